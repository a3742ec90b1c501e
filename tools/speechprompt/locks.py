"""One writer an output: a lock file held with `flock` for as long as a process works on it.

    with exclusive("exp/prompt.pt.lock", "exp/prompt.pt"):
        ...  # a second sp-train aimed at exp/prompt.pt refuses in one line while this runs

The kernel releases an `flock` when its holder exits, however it exits (SIGKILL and the OOM killer
included), so a lock left by a dead process is taken over without any clean-up; the pid written into
the file names the holder in the refusal while the holder lives. The holder removes the file when it
is done, while it still holds the lock; a process that locked the file just before it was removed
finds the path gone (or another file there) and starts over, so two processes never hold one path.

Make holds the lock of an experiment for its whole run through this file run as a script (stdlib only:
it runs before the venv exists), from a parse-time `$(shell ...)` of mk/experiment.mk:

    python3 tools/speechprompt/locks.py hold EXP/.lock --pid MAKE_PID --what EXP

It takes the lock for MAKE_PID, or prints the one-line refusal and exits 1; on success a detached
child keeps the lock until MAKE_PID exits, and the command returns at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from typing import Iterator


class Busy(Exception):
    """A live process holds the lock; the message names it."""


def holder(path: str) -> str:
    """What the lock file says of its holder (`pid 1234 on host`), or `another process`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError:
        text = ""
    return text or "another process"


def owner(pid: int | None = None) -> str:
    return f"pid {pid or os.getpid()} on {os.uname().nodename}"


def acquire(lock_path: str, pid: int | None = None) -> int:
    """The fd of `lock_path` locked for `pid` (default: this process), which is written into it.

    Busy if a live process holds it; OSError if the file cannot be made."""
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"busy: {holder(lock_path)} is working on it (lock {lock_path}); wait for it, "
                       "or stop it") from None
        try:  # the file we locked must still be the one the path names (its holder removes it when done)
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # lock the path's new file
    os.ftruncate(fd, 0)
    os.write(fd, f"{owner(pid)}\n".encode())
    return fd


@contextlib.contextmanager
def exclusive(lock_path: str, what: str) -> Iterator[None]:
    """Hold `lock_path` while the block runs; refuse in one line (naming `what` and the holder) if a live
    process holds it."""
    from .io import BadInput

    try:
        fd = acquire(lock_path)
    except Busy as busy:
        raise BadInput(str(busy), what) from None
    except OSError as error:
        raise BadInput(f"cannot create the lock file {lock_path}: {error.strerror}", what) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)  # releases the flock


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hold(lock_path: str, pid: int, what: str, grace: float = 5.0) -> int:
    """Lock `lock_path` for process `pid` until it exits (see the module's docstring); the exit status."""
    import re
    import time

    deadline = time.monotonic() + grace
    while True:
        try:
            fd = acquire(lock_path, pid)
            break
        except Busy as busy:
            named = holder(lock_path)
            if named == owner(pid):  # make re-executed itself after remaking a makefile: ours already
                return 0
            dead = re.fullmatch(rf"pid (\d+) on {re.escape(os.uname().nodename)}", named)
            if dead and not alive(int(dead[1])) and time.monotonic() < deadline:
                time.sleep(0.05)  # the keeper of a make that just ended lets go within moments
                continue
            print(f"{what}: {busy}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"{what}: cannot create the lock file {lock_path}: {error.strerror}", file=sys.stderr)
            return 1
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        return 0  # the process is gone already: nothing to hold the lock for
    except OSError:  # no pidfd (a kernel before 5.3): poll instead
        watched = None
    if os.fork():
        return 0  # the child holds the lock (the same open file); this one tells make it has it
    os.setsid()  # out of make's process group: a ^C to make does not end the lock before make does
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):  # make's $(shell) returns once nothing holds its pipe
        os.dup2(devnull, stream)
    if watched is not None:
        import select

        select.select([watched], [], [])  # readable when the process exits
    else:
        while alive(pid):
            time.sleep(0.5)
    with contextlib.suppress(OSError):
        os.unlink(lock_path)
    os.close(fd)
    os._exit(0)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Hold a lock file for a process, until it exits.")
    parser.add_argument("command", choices=["hold"])
    parser.add_argument("lock")
    parser.add_argument("--pid", type=int, required=True, help="The process the lock is held for.")
    parser.add_argument("--what", required=True, help="What the lock guards, as the refusal names it.")
    arguments = parser.parse_args()
    sys.exit(hold(arguments.lock, arguments.pid, arguments.what))
