"""Shared test helpers: run a tool as a real command; the slice of real units shipped with the tests."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forked_tools import forked

ROOT = Path(__file__).resolve().parents[1]
# The sp-* commands: those of the venv that runs pytest, or SP_BIN's (a machine without the venv,
# such as tests/gpu_check.sh's, puts small launchers there).
BIN = Path(os.environ.get("SP_BIN") or Path(sys.executable).parent)
# Real HuBERT-100 units of Speech Commands: a slice of each split of those shipped in tasks/units/gsc-hubert100
# (tests/fixtures/gsc-hubert100/README.md says which lines).
REAL_UNITS = ROOT / "tests" / "fixtures" / "gsc-hubert100"
SHIPPED_UNITS = ROOT / "tasks" / "units" / "gsc-hubert100"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped without one; run by tests/gpu_check.sh)")
    config.addinivalue_line("markers", "slow: runs a whole chain of tools (minutes); deselect with -m 'not slow'")


@pytest.fixture(autouse=True, scope="session")
def temporary_files_under_pytests_directory(tmp_path_factory):
    """The processes the tests start keep their temporary files under pytest's temporary directory, which
    pytest prunes, not in /tmp: torchrun leaves a torchelastic_* directory behind at every launch."""
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmpdir"))


def sp(tool, *args, input=None, check=True, cwd=None):
    """Run `sp-<tool> args...` as a process (forked warm, see forked_tools.py); returns the CompletedProcess (text)."""
    result = forked(f"sp-{tool}", list(map(str, args)), input, cwd)
    if result is None:
        result = subprocess.run([str(BIN / f"sp-{tool}"), *map(str, args)], input=input,
                                capture_output=True, text=True, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"sp-{tool} exited {result.returncode}:\n{result.stderr}")
    return result


def shell(script, cwd=None):
    """Run a bash pipeline with the venv's tools first on PATH."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, cwd=cwd, env=env)


@pytest.fixture
def real_units():
    return REAL_UNITS
