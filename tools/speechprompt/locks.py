"""One writer an output: a lock file held with `flock` for as long as a process works on it.

    with exclusive("exp/prompt.pt.lock", "exp/prompt.pt"):
        ...  # a second sp-train aimed at exp/prompt.pt refuses in one line while this runs

The kernel releases an `flock` when its holder exits, however it exits (SIGKILL and the OOM killer
included), so a lock left by a dead process is taken over without any clean-up; the pid written into
the file names the holder in the refusal while the holder lives. The holder removes the file when it
is done, while it still holds the lock; a process that locked the file just before it was removed
finds the path gone (or another file there) and starts over, so two processes never hold one path.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Iterator

from .io import BadInput


def holder(path: str) -> str:
    """What the lock file says of its holder (`pid 1234 on host`), or `another process`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def exclusive(lock_path: str, what: str) -> Iterator[None]:
    """Hold `lock_path` while the block runs; refuse in one line (naming `what` and the holder) if a live
    process holds it."""
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise BadInput(f"cannot create the lock file {lock_path}: {error.strerror}", what) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInput(f"busy: {holder(lock_path)} is working on it (lock {lock_path}); wait for it, "
                           f"or stop it", what) from None
        if _same_file(fd, lock_path):
            break
        os.close(fd)  # its holder removed it as we locked it: lock the path's new file
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)  # releases the flock


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
