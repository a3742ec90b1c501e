"""sp-lmdata: units table -> LM data lines `id<TAB>units <s> label`.

The text after the tab is exactly the fairseq line SpeechPrompt trains on;
the id stays in the first column so predictions join back by id.
"""
import click

from .io import (BadInput, LMLine, Skipper, atomic_output, command, input_argument, log,
                 output_option, read_units, skip_bad_option)


@command("Write LM data `id<TAB>units <s> label` (or `id<TAB>units` with --no-label) from a units table.")
@input_argument
@output_option
@click.option("--no-label", is_flag=True, help="Write units only: the unlabelled text a unit LM pretrains on.")
@skip_bad_option
def main(input, output, no_label, skip_bad):
    skipper = Skipper(skip_bad)
    written = 0
    with atomic_output(output) as out:
        for record in read_units(input, skipper):
            with skipper.guard():
                if not record.units:
                    raise BadInput(f"utterance {record.id!r} has no units", record.where)
                if no_label:
                    out.write(f"{record.id}\t{' '.join(record.units)}\n")
                else:
                    if record.label is None:
                        raise BadInput(f"utterance {record.id!r} has no label (use --no-label for unlabelled text)", record.where)
                    out.write(LMLine(record.id, record.units, record.label.split()).row() + "\n")
                written += 1
    skipper.report("utterances")
    log(f"wrote {written} lines")
