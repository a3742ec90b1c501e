"""Every sp-* tool is installed in the venv, answers --help, and keeps stdout for data."""
import tomllib

import pytest

from conftest import ROOT, sp

TOOLS = sorted(tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())["project"]["scripts"])
CARD = ["sp-manifest", "sp-quantize", "sp-dedup", "sp-lmdata", "sp-verbalize", "sp-binarize", "sp-train", "sp-sample"]


def test_the_card_tools_are_declared():
    assert set(CARD) <= set(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
def test_help(tool):
    result = sp(tool.removeprefix("sp-"), "--help", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
