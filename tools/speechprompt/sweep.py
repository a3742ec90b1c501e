"""sp-sweep: the table of a sweep, one row per cell, and the cell selected by valid accuracy.

    sp-sweep exp/SCR/sweep/LR=3e-2,PROMPT_LEN=5 exp/SCR/sweep/LR=1e-2,PROMPT_LEN=5 -o exp/SCR/sweep.tsv

Each CELL is an experiment directory (`prompt.json`, `valid/metrics.json`, `metrics.json`). Cells that
differ only in `SEED=` are one setting (`make sweep SWEEP='LR=3e-2,1e-2 SEED=1,2,3'`): a row is a
setting. Columns: cell (the setting), seeds, valid_accuracy, valid_std, test_accuracy, test_std (means
over the seeds, sample standard deviations; empty for one seed), trainable, train_seconds, stop,
updates, selected. The selection rule is in `speechprompt/selection.py`; the summary goes to stderr.
"""
import click

from .io import atomic_output, command, log, output_option
from .selection import by_setting, format_table, read_cell, select, summary


@command("Tabulate a sweep's cells (valid and test accuracy, mean and deviation over seeds, trainable values, "
         "time) and select by valid accuracy.")
@click.argument("cells", nargs=-1, required=True, type=click.Path(file_okay=False))
@output_option
def main(cells, output):
    rows = by_setting([read_cell(cell) for cell in cells])
    chosen = select(rows)
    table = format_table(rows, chosen)
    with atomic_output(output) as f:
        f.write(table)
    if output != "-":
        click.echo(table, err=True, nl=False)
    log(summary(rows, chosen))
