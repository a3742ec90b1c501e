"""sp-dedup: merge consecutive duplicate units, as a stream.

    printf 'a|1 1 2 2 2 3 1|yes\n' | sp-dedup      ->  a<TAB>1 2 3 1<TAB>yes
"""
import click

from .io import Skipper, atomic_output, command, input_argument, output_option, read_units, skip_bad_option
from .units import dedup


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
            if not durations:
                merged.durations = None
            out.write(merged.row() + "\n")
    skipper.report("lines")
