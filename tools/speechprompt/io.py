"""The one shared I/O and error module of the sp-* tools.

Every tool reads and writes id-keyed tables (README.md, "Formats"): plain
text, one record a line, the utterance id in the first column.  This module
owns what every tool needs and nothing else:

- `open_input` / `atomic_output`: a path or `-` for stdin/stdout; a regular
  file output is written to a temporary file and renamed into place only when
  the tool succeeds, so `make` never sees a partial output as done; other
  outputs behave as a shell redirect would (see `atomic_path`);
- readers for the shared formats (manifest, units table, LM data, predictions) that carry
  the file name and line number of every record for error messages;
- `BadInput` (one line `file:line: message`, exit 1) and `Skipper`, which
  turns bad records into counted, reported skips under `--skip-bad`;
- `command`, the click decorator every tool's `main` is built with.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import json
import math
import os
import re
import signal
import stat
import sys
import tempfile
from typing import Callable, Iterator, TextIO

import click

SEP = "<s>"  # separator between units and label in fairseq LM lines


# --------------------------------------------------------------------- errors
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


# ------------------------------------------------------------------- streams
def open_input(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8-sig")  # -sig: a BOM would stick to the first id
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None


def input_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator:
    """Yield a writable file; `-` is stdout. A real file appears only on success."""
    if path == "-":
        if "b" in mode:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        else:
            yield sys.stdout
            sys.stdout.flush()
        return
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield the path to write `path` through, as a shell redirect would, but atomic for regular files.

    - a regular file (new or existing): a temporary `.NAME.PID.XXXX.tmp` beside
      it, renamed over it on success; a new file gets the mode a redirect gives
      (0666 less the umask), an existing one keeps its mode;
    - a symlink: followed, and its target is replaced atomically;
    - a character device, FIFO or socket (`/dev/null`, `/dev/stdout`, a named
      pipe): written straight into, never replaced;
    - an existing directory or an empty path: refused (`check_output` does it
      before any work starts).

    Temporaries of the same output left by a killed run are removed first.
    """
    target = check_output(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        yield target
        return
    directory, name = os.path.split(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory, name)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def check_output(path: str) -> str:
    """The file an output path writes to (a symlink followed); a directory or empty path is refused."""
    if not path:
        raise BadInput("the output path is empty")
    if path == "-":
        return path
    target = os.path.realpath(path) if os.path.islink(path) else path
    if os.path.isdir(target):
        raise BadInput("is a directory, not an output file", path)
    parent = os.path.dirname(os.path.abspath(target))
    while not os.path.lexists(parent):  # a missing parent is created; an existing non-directory cannot be
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise BadInput(f"cannot write: {parent} is not a directory", path)
    return target


def output_callback(ctx, param, value):
    """click callback: `-o` is checked when the command line is read, before any work."""
    if value is not None:
        check_output(value)
    return value


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """`.NAME.PID.XXXX.tmp` of a process that is gone (SIGKILL leaves them): removed."""
    for tmp in glob.glob(os.path.join(glob.escape(directory), f".{glob.escape(name)}.*.tmp")):
        middle = os.path.basename(tmp)[len(name) + 2:-len(".tmp")]
        ours = re.fullmatch(r"(\d+)\.[a-z0-9_]+", middle)  # PID.XXXX; older runs wrote XXXX alone
        if (ours and _alive(int(ours[1]))) or not (ours or re.fullmatch(r"[a-z0-9_]+", middle)):
            continue  # a live run's, or another output's (`.NAME.old.PID.XXXX.tmp`)
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lines(path: str) -> Iterator[tuple[str, str]]:
    """Yield (`file:line`, text without newline) for each non-blank line."""
    name = input_name(path)
    f = open_input(path)
    try:
        for number, text in enumerate(f, 1):
            text = text.rstrip("\r\n")
            if number == 1:
                text = text.removeprefix("\ufeff")  # stdin is not opened as utf-8-sig
            if text.strip():
                yield f"{name}:{number}", text
    finally:
        if f is not sys.stdin:
            f.close()


# ------------------------------------------------------------------- records
def normalize_label(label: str | None) -> str | None:
    """Labels are whitespace-separated slot values; None means unlabelled."""
    if label is None:
        return None
    label = " ".join(label.split())
    return label or None


@dataclasses.dataclass
class Utterance:
    """One row of the manifest: `id  path  offset  num_samples  label`."""

    id: str
    path: str
    offset: int
    num_samples: int
    label: str | None
    where: str = ""

    def row(self) -> str:
        return "\t".join([self.id, self.path, str(self.offset), str(self.num_samples), self.label or ""])


@dataclasses.dataclass
class Units:
    """One row of the units table: `id  units  label  [durations]`."""

    id: str
    units: list[str]
    label: str | None
    durations: list[int] | None = None
    where: str = ""

    def row(self) -> str:
        fields = [self.id, " ".join(self.units), self.label or ""]
        if self.durations is not None:
            fields.append(" ".join(map(str, self.durations)))
        return "\t".join(fields)


@dataclasses.dataclass
class LMLine:
    """One row of LM data: `id  u1 u2 ... <s> l1 l2 ...` (the fairseq text after the tab)."""

    id: str
    units: list[str]
    label: list[str]
    where: str = ""

    def row(self) -> str:
        return f"{self.id}\t{self.text()}"

    def text(self) -> str:
        return " ".join(self.units + [SEP] + self.label)


@dataclasses.dataclass
class Prediction:
    """One line of predictions JSONL (sp-sample, sp-baseline -> sp-score): a candidate label per id."""

    id: str
    units: str
    label: str | None  # the truth, None if unknown
    prediction: str
    score: float | None = None  # the prediction's probability
    scores: dict[str, float] | None = None  # a probability per candidate
    where: str = ""

    @classmethod
    def best(cls, uid: str, units: str, label: str | None, candidates: list[str], probs) -> Prediction:
        """The most probable candidate; `probs[i]` is the probability of `candidates[i]` (6 decimals kept)."""
        best = max(range(len(candidates)), key=lambda i: float(probs[i]))  # the first of equals, as argmax
        return cls(uid, units, label, str(candidates[best]), round(float(probs[best]), 6),
                   {str(c): round(float(p), 6) for c, p in zip(candidates, probs)})

    def row(self) -> str:
        return json.dumps({"id": self.id, "units": self.units, "label": self.label, "prediction": self.prediction,
                           "score": self.score, "scores": self.scores}, ensure_ascii=False)


def is_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also accepts `²` and `٣`, which `int` then rejects or misreads."""
    return text.isascii() and text.isdigit()


def _check_units(units: list[str], where: str, what: str = "unit") -> list[str]:
    if units and not is_number("".join(units)):  # one C-level check; find the culprit only on failure
        bad = next(unit for unit in units if not is_number(unit))
        raise BadInput(f"{what} {bad!r} is not a non-negative integer", where)
    return units


def parse_manifest(text: str, where: str) -> Utterance:
    fields = text.split("\t")
    if len(fields) != 5:
        raise BadInput(f"expected 5 tab-separated columns (id path offset num_samples label), got {len(fields)}", where)
    uid, audio, offset, num_samples, label = fields
    if not (is_number(offset) and is_number(num_samples)):
        raise BadInput("offset and num_samples must be non-negative integers", where)
    return Utterance(uid, audio, int(offset), int(num_samples), normalize_label(label), where)


def parse_units(text: str, where: str) -> Units:
    """A units-table row, either TSV or GSLM's `name|units[|label]`."""
    if "\t" in text:
        fields = text.split("\t")
        if not 2 <= len(fields) <= 4:
            raise BadInput(f"expected 2 to 4 tab-separated columns (id units [label [durations]]), got {len(fields)}", where)
    else:
        fields = text.split("|")
        if not 2 <= len(fields) <= 3:
            raise BadInput(f"expected GSLM 'name|units[|label]', got {len(fields)} '|'-separated fields", where)
    fields += [""] * (4 - len(fields))
    uid, units, label, durations = fields
    if not uid:
        raise BadInput("empty id", where)
    record = Units(uid, _check_units(units.split(), where), normalize_label(label), None, where)
    if durations.strip():
        record.durations = [int(d) for d in _check_units(durations.split(), where, "duration")]
        if len(record.durations) != len(record.units):
            raise BadInput(f"{len(record.durations)} durations for {len(record.units)} units (a 4th column holds "
                           "one run length per unit)", where)
        if 0 in record.durations:
            raise BadInput("a duration of 0 (a run length is at least 1)", where)
    return record


def parse_lm(text: str, where: str) -> LMLine:
    uid, tab, body = text.partition("\t")
    if not tab:
        raise BadInput(f"expected 'id<TAB>units {SEP} label'", where)
    tokens = body.split()
    if tokens.count(SEP) != 1:
        raise BadInput(f"expected exactly one {SEP} separator, found {tokens.count(SEP)}", where)
    cut = tokens.index(SEP)
    return LMLine(uid, _check_units(tokens[:cut], where), tokens[cut + 1:], where)


def parse_prediction(text: str, where: str) -> Prediction:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"not JSON: {error.msg}", where) from None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or "prediction" not in record:
        raise BadInput("expected a JSON object with 'id' and 'prediction'", where)
    for key in ("prediction", "label"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise BadInput(f"'{key}' must be a string or null, not {type(record[key]).__name__} "
                           f"{json.dumps(record[key])[:40]}", where)
    scores = record.get("scores")
    if scores is not None and not (isinstance(scores, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scores.values())):
        raise BadInput("'scores' must map labels to finite numbers (NaN or infinity found, or not numbers)", where)
    return Prediction(record["id"], record.get("units", ""), normalize_label(record.get("label")),
                      record["prediction"], record.get("score"), record.get("scores"), where)


def read_records(path: str, parse: Callable[[str, str], object], skipper: Skipper | None = None) -> Iterator:
    """Parse each line of `path`; ids must be unique. With a skipper, bad lines are skipped."""
    ids = UniqueIds()
    guard = skipper.guard if skipper else contextlib.nullcontext
    for where, text in lines(path):
        good = None
        with guard():
            record = parse(text, where)
            ids.check(record.id, where)
            good = record
        if good is not None:
            yield good


def read_manifest(path: str, skipper: Skipper | None = None) -> Iterator[Utterance]:
    return read_records(path, parse_manifest, skipper)


def read_units(path: str, skipper: Skipper | None = None) -> Iterator[Units]:
    return read_records(path, parse_units, skipper)


def read_lm(path: str, skipper: Skipper | None = None) -> Iterator[LMLine]:
    return read_records(path, parse_lm, skipper)


def read_predictions(path: str, skipper: Skipper | None = None) -> Iterator[Prediction]:
    return read_records(path, parse_prediction, skipper)


# ----------------------------------------------------------------------- CLI
class _OneLineErrors:
    """Every error is one stderr line `sp-x: error: ...`; a usage error exits 2, bad input 1."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        if not standalone_mode:  # a caller in Python (a benchmark) handles the exceptions itself
            return super().main(args, prog_name, standalone_mode=False, **extra)
        signal.signal(signal.SIGTERM, _terminate)  # every tool, subcommands too
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except UsageProblem as error:  # already one self-contained line
            error.show()
            sys.exit(error.exit_code)
        except click.UsageError as error:
            prog = error.ctx.find_root().info_name if error.ctx else prog_name or os.path.basename(sys.argv[0])
            click.echo(f"{prog}: error: {one_line(error.format_message())} (see {prog} --help)", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(0)


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


input_argument = click.argument("input", default="-", metavar="[INPUT]")
output_option = output_path_option("-o", "--output", default="-", show_default=True, help="Output file, - for stdout.")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def runtime_options(precision: bool = False) -> Callable:
    """`--device`, `--threads` (and `--precision`): one meaning in every tool that runs a model."""
    options = [
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
                     help="auto: the first GPU when torch sees one, else the CPU."),
        click.option("--threads", type=click.IntRange(min=1),
                     help="CPU threads for torch and the BLAS/OpenMP pools [default: theirs]."),
    ]
    if precision:
        options.append(click.option("--precision", default="fp32", show_default=True,
                                    type=click.Choice(["fp32", "bf16", "fp16"]),
                                    help="bf16/fp16 autocast, only on a GPU; the CPU stays fp32."))

    def wrap(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return wrap


def pick_device(name: str = "auto", precision: str = "fp32", threads: int | None = None):
    """The torch device of `--device`; also applies `--threads`. One-line usage errors for what cannot run."""
    import torch

    if not DEVICE_PATTERN.fullmatch(name):
        raise UsageProblem(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    if threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(threads)  # scikit-learn's and numpy's pools too
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageProblem(f"--device {name}: torch sees no CUDA device")
    else:
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageProblem(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA device(s)")
        if device.index is not None:  # code that says only "cuda" (fairseq's trainer) uses it too
            torch.cuda.set_device(device.index)
    if precision != "fp32" and device.type != "cuda":
        raise UsageProblem(f"--precision {precision} needs a GPU (--device cuda)")
    return device


skip_bad_option = click.option("--skip-bad", is_flag=True, help="Skip bad records (counted and reported) instead of failing.")
