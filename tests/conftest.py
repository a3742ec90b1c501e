"""Shared test helpers: run a tool as a real command, find the shared data."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv that runs pytest holds the sp-* commands
SHARED_UNITS = ROOT.parent / "shared" / "data" / "gsc-hubert100"


def sp(tool, *args, input=None, check=True, cwd=None):
    """Run `sp-<tool> args...` as a subprocess; returns the CompletedProcess (text)."""
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
def shared_units():
    if not (SHARED_UNITS / "train.txt").exists():
        pytest.skip(f"shared units not found at {SHARED_UNITS}")
    return SHARED_UNITS
