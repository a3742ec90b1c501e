"""Inputs from a path or `-`, and outputs that appear only when a tool succeeds (atomic renames)."""
from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import os
import re
import stat
import sys
import tempfile
import zlib
from typing import Iterator, TextIO

from .errors import BadInput, writing

GZIP_SUFFIX = ".gz"


def open_input(path: str) -> TextIO:
    """A text input: `-` is stdin; a path ending in `.gz` is read through gzip, as the shipped units are."""
    if path == "-":
        return sys.stdin
    try:
        if path.endswith(GZIP_SUFFIX):
            return gzip.open(path, "rt", encoding="utf-8-sig")
        return open(path, encoding="utf-8-sig")  # -sig: a BOM would stick to the first id
    except OSError as error:
        raise BadInput(f"cannot read: {error.strerror}", path) from None


def file_hash(path: str) -> str:
    """The sha256 of a file's bytes, hex: what a prompt records of its frozen uLM, what the asset cache verifies."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
        with writing(path):
            yield target
        return
    directory, name = os.path.split(os.path.abspath(target))
    tmp = None
    try:
        with writing(path, directory):  # a full or read-only disk: one line naming the output, no temporary left
            os.makedirs(directory, exist_ok=True)
            _remove_stale_temporaries(directory, name)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=".tmp")
            os.close(fd)
            yield tmp
            os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
            os.replace(tmp, target)
    finally:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)


def check_output(path: str) -> str:
    """The file an output path writes to (a symlink followed); a directory, an empty path, or a place that
    cannot be written (a read-only file system or directory) is refused."""
    if not path:
        raise BadInput("the output path is empty")
    if path == "-":
        return path
    target = os.path.realpath(path) if os.path.islink(path) else path
    if os.path.isdir(target):
        raise BadInput("is a directory, not an output file", path)
    if os.path.exists(target) and not stat.S_ISREG(os.stat(target).st_mode):
        return target  # a device or a FIFO is written into, not replaced
    _check_writable(os.path.dirname(os.path.abspath(target)), path)
    return target


def check_output_dir(path: str) -> str:
    """An output directory (replaced or filled by the tool): refused if it is a file, or cannot be written."""
    if not path:
        raise BadInput("the output path is empty")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise BadInput("exists and is not a directory", path)
    _check_writable(os.path.dirname(os.path.abspath(path)), path)
    if os.path.isdir(path):
        _check_writable(os.path.abspath(path), path)
    return path


def _check_writable(directory: str, path: str) -> None:
    """`directory` (or, if missing, the ancestor it would be made in) takes new files."""
    while not os.path.lexists(directory):  # a missing parent is created; an existing non-directory cannot be
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory):
        raise BadInput(f"cannot write: {directory} is not a directory", path)
    if not os.access(directory, os.W_OK | os.X_OK):
        read_only = os.statvfs(directory).f_flag & os.ST_RDONLY
        raise BadInput(f"cannot write: {directory} is on a read-only file system" if read_only
                       else f"cannot write: no permission to create files in {directory}", path)


def output_callback(ctx, param, value):
    """click callback: `-o` is checked when the command line is read, before any work."""
    if value is not None:
        check_output(value)
    return value


def output_dir_callback(ctx, param, value):
    """click callback: an output directory is checked when the command line is read, before any work."""
    if value is not None:
        check_output_dir(str(value))
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
    number = 0
    try:
        for number, text in enumerate(f, 1):
            text = text.rstrip("\r\n")
            if number == 1:
                text = text.removeprefix("\ufeff")  # stdin is not opened as utf-8-sig
            if text.strip():
                yield f"{name}:{number}", text
    except UnicodeDecodeError as error:
        raise BadInput(f"not UTF-8 text ({error.reason} at byte {error.start} of the line)",
                       f"{name}:{number + 1}") from None
    except (OSError, EOFError, zlib.error) as error:  # a corrupt or truncated .gz shows itself only when read
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise BadInput(f"cannot read: {reason}", f"{name}:{number + 1}") from None
    finally:
        if f is not sys.stdin:
            f.close()
