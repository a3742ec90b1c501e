"""The click command base of every sp-* tool: one-line errors, SIGTERM clean-up, the shared options."""
from __future__ import annotations

import functools
import os
import signal
import sys
from typing import Callable

import click

from .errors import WRITE_ERRORS, BadInput, UsageProblem, one_line
from .files import output_callback, output_dir_callback

class _OneLineErrors:
    """Every error is one stderr line `sp-x: error: ...`; a usage error exits 2, bad input 1."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        if not standalone_mode:  # a caller in Python (a benchmark) handles the exceptions itself
            return super().main(args, prog_name, standalone_mode=False, **extra)
        signal.signal(signal.SIGTERM, _terminate)  # every tool, subcommands too
        try:
            sys.exit(self._exit_code(args, prog_name, extra))
        finally:
            # The work is over, done or failed: from here a SIGTERM ends the process as it ends any other.
            # The handler would raise into Python's exit-time callbacks (torch and fairseq register some):
            # a traceback there, and the exit status of the work, not of the signal.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _exit_code(self, args, prog_name, extra) -> int:
        try:
            try:
                super().main(args, prog_name, standalone_mode=False, **extra)
            except OSError as error:  # a full or read-only disk (or a missing permission) no guard caught
                if isinstance(error, click.ClickException) or error.errno not in WRITE_ERRORS or not error.filename:
                    raise
                raise BadInput(error.strerror or str(error), os.fsdecode(error.filename)) from None
        except UsageProblem as error:  # already one self-contained line
            error.show()
            return error.exit_code
        except click.UsageError as error:
            prog = error.ctx.find_root().info_name if error.ctx else prog_name or os.path.basename(sys.argv[0])
            click.echo(f"{prog}: error: {one_line(error.format_message())} (see {prog} --help)", err=True)
            return error.exit_code
        except click.ClickException as error:
            error.show()
            return error.exit_code
        except click.Abort:
            click.echo("Aborted!", err=True)
            return 1
        return 0


class _Command(_OneLineErrors, click.Command):
    pass


class Group(_OneLineErrors, click.Group):
    """A tool with subcommands (`sp-verbalize fit|apply|invert`), its errors one line like every tool's."""


def _terminate(signum, frame):
    sys.exit(128 + signum)  # unwinds like an error: atomic outputs remove their temporaries


def command(description: str) -> Callable:
    """Build a tool's click command: `@command("one line")` over `def main(...)`."""

    def wrap(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except BrokenPipeError:  # `sp-x | head` is fine
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                sys.exit(0)

        return click.command(cls=_Command, help=description,
                             context_settings={"help_option_names": ["-h", "--help"]})(run)

    return wrap


def output_path_option(*names: str, **kwargs) -> Callable:
    """A click option naming an output file, checked before any work (`check_output`)."""
    return click.option(*names, callback=output_callback, **kwargs)


def output_dir_option(*names: str, **kwargs) -> Callable:
    """A click option naming an output directory, checked before any work (`check_output_dir`)."""
    return click.option(*names, callback=output_dir_callback, **kwargs)


input_argument = click.argument("input", default="-", metavar="[INPUT]")
output_option = output_path_option("-o", "--output", default="-", show_default=True, help="Output file, - for stdout.")
skip_bad_option = click.option("--skip-bad", is_flag=True, help="Skip bad records (counted and reported) instead of failing.")
