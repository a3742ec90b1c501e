"""locks.exclusive: one live holder an output; a dead holder's lock is taken over."""
import signal
import subprocess
import sys
import time

import pytest

from speechprompt.io import BadInput
from speechprompt.locks import exclusive

HOLD = """
import signal, sys, time
from speechprompt.locks import exclusive
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as every sp-* tool does: SIGTERM unwinds
with exclusive(sys.argv[1], "out"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_another_process(lock):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_live_holder_refuses_a_second_and_its_death_frees_the_lock(tmp_path, how):
    lock = tmp_path / "prompt.pt.lock"
    process = hold_in_another_process(lock)
    try:
        with pytest.raises(BadInput, match=rf"out: busy: pid {process.pid} on .* is working on it"):
            with exclusive(str(lock), "out"):
                pass
    finally:
        process.send_signal(how)
        process.wait()
    assert lock.exists() == (how == signal.SIGKILL)  # SIGTERM unwinds the block, which removes the file
    with exclusive(str(lock), "out"):  # a file a dead holder left is locked again
        assert lock.exists()
    assert not lock.exists()


def test_the_lock_is_released_when_the_block_ends(tmp_path):
    lock = str(tmp_path / "x.lock")
    with exclusive(lock, "x"):
        pass
    start = time.monotonic()
    with exclusive(lock, "x"):
        assert time.monotonic() - start < 5
