"""Errors as one line (`sp-x: error: FILE:LINE: message`), logging to stderr, and counted skips."""
from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import Iterator

import click

class BadInput(click.ClickException):
    """A problem with the input, reported as one line: `file:line: message`."""

    exit_code = 1

    def __init__(self, message: str, where: str | None = None):
        super().__init__(one_line(f"{where}: {message}" if where else message))
        self.prog = _tool()  # while the tool's context is still current

    def show(self, file=None):
        click.echo(f"{self.prog}: error: {self.format_message()}", err=True)


def one_line(text: str) -> str:
    """Control characters (a newline in a file name) escaped, so an error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class UsageProblem(click.UsageError):
    """A bad option value, reported as one line like BadInput, with click's usage exit status 2."""

    def show(self, file=None):
        click.echo(f"{_tool()}: error: {self.format_message()}", err=True)


@contextlib.contextmanager
def usage_errors(*errors: type[Exception]) -> Iterator[None]:
    """In a tool's CLI: report these errors of library code as one-line usage errors (exit 2)."""
    try:
        yield
    except errors as error:
        raise UsageProblem(str(error)) from None


def _prog() -> str:
    """The command as logs name it: `sp-x`, or `sp-x sub` for a tool with subcommands."""
    ctx = click.get_current_context(silent=True)
    return ctx.command_path if ctx and ctx.command_path else os.path.basename(sys.argv[0])


def _tool() -> str:
    """The tool as errors name it, `sp-x: error: ...`, subcommand or not."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().info_name if ctx and ctx.find_root().info_name else os.path.basename(sys.argv[0])


def log(message: str) -> None:
    """Progress and diagnostics go to stderr; stdout carries only data."""
    click.echo(f"{_prog()}: {one_line(message)}", err=True)


class Skipper:
    """Raise on a bad record, or with `--skip-bad` count it, warn, and go on.

    >>> skip = Skipper(skip_bad=True)
    >>> with skip.guard():
    ...     raise BadInput("empty audio", "train.tsv:3")
    """

    shown = 10  # the first few skips are logged one by one, the rest only counted

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.skipped = 0

    @contextlib.contextmanager
    def guard(self):
        try:
            yield
        except BadInput as error:
            if not self.skip_bad:
                raise
            self.skipped += 1
            if self.skipped <= self.shown:
                log(f"skipped: {error.format_message()}")
            elif self.skipped == self.shown + 1:
                log("skipping more bad records; only the count is reported from here on")

    def report(self, what: str = "records") -> None:
        if self.skip_bad:
            log(f"skipped {self.skipped} bad {what}")


class UniqueIds:
    """Fails on the second record with an id already seen."""

    def __init__(self):
        self.seen: dict[str, str] = {}

    def check(self, uid: str, where: str) -> None:
        if uid in self.seen:
            raise BadInput(f"duplicate id {uid!r} (first at {self.seen[uid]})", where)
        self.seen[uid] = where


# What a write can meet that is no bug of the tool: the disk or the quota is full, the file system is
# read-only, the file is too large for it, the permission is missing, the device failed.
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EIO}


class CannotWrite(BadInput, OSError):
    """A write that failed for the disk's sake: one line `where: cannot write: No space left on device` when
    nothing handles it, and still the OSError it was (its errno and strerror) for a caller that does
    (sp-train keeps its previous resume state and says so)."""

    def __init__(self, error: OSError, where: str):
        BadInput.__init__(self, f"cannot write: {error.strerror or error}", where)
        self.errno, self.strerror, self.filename = error.errno, error.strerror, error.filename


@contextlib.contextmanager
def writing(where: str, place: str | None = None) -> Iterator[None]:
    """Inside this block, a write that fails for the disk's sake (full, read-only, ...) is one line naming
    `where` (the output being written), not a traceback. `place`: the directory written in; an error that
    names a file elsewhere (an input) is left as it is."""
    try:
        yield
    except CannotWrite:
        raise  # an inner output's own line
    except OSError as error:
        if error.errno not in WRITE_ERRORS:
            raise
        if error.filename and place:
            inside = os.path.abspath(os.fsdecode(error.filename))
            if os.path.commonpath([inside, os.path.abspath(place)]) != os.path.abspath(place):
                raise
        raise CannotWrite(error, where) from None
