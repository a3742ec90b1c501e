"""sp-dedup: merge consecutive duplicate units, as a stream.

    printf 'a|1 1 2 2 2 3 1|yes\n' | sp-dedup      ->  a<TAB>1 2 3 1<TAB>yes

A table that carries F0 (sp-f0) keeps its durations and F0, merged by duration (the F0 column needs
the durations beside it).
"""
import click

from .io import Skipper, Units, atomic_output, command, input_argument, output_option, read_units, skip_bad_option


def dedup(record: Units) -> Units:
    units = record.units
    starts = [i for i in range(len(units)) if i == 0 or units[i] != units[i - 1]]
    runs = list(zip(starts, starts[1:] + [len(units)]))
    if record.durations:  # already merged once: run lengths add up
        durations = [sum(record.durations[a:b]) for a, b in runs]
    else:
        durations = [b - a for a, b in runs]
    f0 = None if record.f0 is None else [merged_f0(record.f0[a:b], record.durations[a:b]) for a, b in runs]
    return Units(record.id, [units[i] for i in starts], record.label, durations, record.where, f0)


def merged_f0(values: list, durations: list) -> int | None:
    """The F0 of merged runs: their voiced values averaged by duration (cents), unvoiced if none is voiced."""
    voiced = [(v, d) for v, d in zip(values, durations) if v is not None]
    if not voiced:
        return None
    return round(sum(v * d for v, d in voiced) / sum(d for _, d in voiced))


@command("Merge consecutive duplicate units of a units table (TSV or GSLM name|units|label).")
@input_argument
@output_option
@click.option("--durations/--no-durations", default=False, show_default=True,
              help="Write a 4th column with the run length of each kept unit.")
@skip_bad_option
def main(input, output, durations, skip_bad):
    skipper = Skipper(skip_bad)
    with atomic_output(output) as out:
        for record in read_units(input, skipper):
            merged = dedup(record)
            if not durations and merged.f0 is None:
                merged.durations = None
            out.write(merged.row() + "\n")
    skipper.report("lines")
