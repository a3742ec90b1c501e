"""sp-lmdata: units table -> LM data lines `id<TAB>units <s> label`.

The text after the tab is exactly the fairseq line SpeechPrompt trains on;
the id stays in the first column so predictions join back by id.

`--max-units N` crops longer utterances to N units, so that `</s> units <s>
label` fits the unit LM's positions (sp-train and sp-sample refuse sentences
that do not). Which N units stay is `--crop`: `head` the first N, `tail` the
last N, `center` the middle N (from unit (n - N) // 2 on). The crop is the same
on every run; the count of cropped utterances goes to stderr.
"""
import click

from .io import (BadInput, LMLine, Skipper, atomic_output, command, input_argument, log,
                 output_option, read_units, skip_bad_option)
from .units import CROPS, crop


@command("Write LM data `id<TAB>units <s> label` (or `id<TAB>units` with --no-label) from a units table.")
@input_argument
@output_option
@click.option("--no-label", is_flag=True, help="Write units only: the unlabelled text a unit LM pretrains on.")
@click.option("--max-units", type=click.IntRange(min=1),
              help="Crop longer utterances to this many units (to fit the uLM's positions) [default: no crop].")
@click.option("--crop", "keep", type=click.Choice(CROPS), default="center", show_default=True,
              help="Which units --max-units keeps: the first, the middle or the last ones.")
@skip_bad_option
def main(input, output, no_label, max_units, keep, skip_bad):
    skipper = Skipper(skip_bad)
    written = cropped = 0
    with atomic_output(output) as out:
        for record in read_units(input, skipper):
            with skipper.guard():
                if not record.units:
                    raise BadInput(f"utterance {record.id!r} has no units", record.where)
                units = record.units
                if max_units and len(units) > max_units:
                    units = crop(units, max_units, keep)
                    cropped += 1
                if no_label:
                    out.write(f"{record.id}\t{' '.join(units)}\n")
                else:
                    if record.label is None:
                        raise BadInput(f"utterance {record.id!r} has no label (use --no-label for unlabelled text)", record.where)
                    out.write(LMLine(record.id, units, record.label.split()).row() + "\n")
                written += 1
    skipper.report("utterances")
    log(f"wrote {written} lines" + (f"; cropped {cropped} to {max_units} units (kept the {keep})" if max_units else ""))
