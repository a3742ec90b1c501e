"""Every sp-* tool is installed in the venv, answers --help, and keeps stdout for data."""
import re
import subprocess
import sys
import tomllib

import pytest
import torch

from conftest import BIN, ROOT, sp

TOOLS = sorted(tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())["project"]["scripts"])
CARD = ["sp-manifest", "sp-quantize", "sp-dedup", "sp-lmdata", "sp-verbalize", "sp-binarize", "sp-train", "sp-sample"]


def test_the_card_tools_are_declared():
    assert set(CARD) <= set(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
def test_help(tool):
    result = sp(tool.removeprefix("sp-"), "--help", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")


SCRIPTS = tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())["project"]["scripts"]
TOOL_MODULES = {entry.split(":")[0] for entry in SCRIPTS.values()}  # speechprompt.quantize, ...


@pytest.mark.parametrize("tool", TOOLS)
def test_importing_a_tool_module_imports_no_other_tool_module(tool):
    module = SCRIPTS[tool].split(":")[0]
    code = f"import sys, {module}; print(*sorted(m for m in sys.modules if m.startswith('speechprompt')))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert module in loaded and "speechprompt.io" in loaded
    assert not loaded & (TOOL_MODULES - {module})


def test_no_tool_imports_another_tool_even_lazily():
    """mk/deps.py reads every import (those inside functions too): no tool's closure holds another tool."""
    out = subprocess.run([sys.executable, ROOT / "mk" / "deps.py", "tools/pyproject.toml"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    deps = {line.split(" := ")[0].removeprefix("DEPS."): line.split(" := ")[1].split() for line in out.splitlines()}
    files = {f"tools/{m.replace('.', '/')}.py": m for m in TOOL_MODULES}
    assert set(deps) == {tool.removeprefix("sp-") for tool in TOOLS}
    for tool, paths in deps.items():
        assert [files[p] for p in paths if p in files] == [SCRIPTS[f"sp-{tool}"].split(":")[0]]
    assert "tools/speechprompt/prompting/model.py" in deps["train"] and "tools/speechprompt/io/files.py" in deps["sample"]
    assert "tools/speechprompt/datasets/folders.py" in deps["manifest"]  # loaded by name, not by an import


def device_tools():
    return [tool for tool in TOOLS if "--device" in sp(tool.removeprefix("sp-"), "--help").stdout]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_every_tool_refuses_a_gpu_that_is_not_there_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.touch()
    out = tmp_path / "out"
    args = {"sp-kmeans": [empty, "-o", out], "sp-quantize": [empty, "--kmeans", empty, "-o", out],
            "sp-pretrain": [tmp_path, "--save-dir", out], "sp-train": [tmp_path, "--base", empty, "-o", out],
            "sp-sample": [tmp_path, "--prompt", empty, "-o", out], "sp-baseline": [empty, empty, "-o", out],
            "sp-classify": [empty, empty, "-o", out]}
    assert sorted(args) == device_tools()
    for tool, tool_args in args.items():
        result = sp(tool.removeprefix("sp-"), *tool_args, "--device", "cuda:0", check=False)
        assert (result.returncode, result.stderr) == (2, f"{tool}: error: --device cuda:0: torch sees no CUDA device\n")
        assert not out.exists()


def test_pyproject_declares_what_requirements_txt_installs_for_the_tools():
    name = lambda spec: re.split(r"[<>=!~\[;\s]", spec.strip(), maxsplit=1)[0].lower()
    project = tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())["project"]
    declared = {name(d) for d in project["dependencies"]}
    extras = {name(d) for group in project.get("optional-dependencies", {}).values() for d in group}
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = {name(line) for line in lines if line.strip() and not line.startswith("#")}
    assert required - {"pytest", "pytest-xdist"} <= declared | extras  # pytest runs the tests, not the tools
    assert extras == {"transformers", "safetensors"} and not extras & declared  # the hf backbone's, optional
    assert not {"fairseq", "ve-fairseq", "torchaudio"} & declared


@pytest.mark.parametrize("case", ["stdin-to-stdout", "bad-line", "cwd", "env", "usage-error"])
def test_a_forked_command_answers_as_a_fresh_one(tmp_path, monkeypatch, case):
    """The tests run the tools forked from a warm interpreter (forked_tools.py): same exit status,
    stdout and stderr as the installed command started afresh, with the test's cwd and environment."""
    from forked_tools import forked

    (tmp_path / "units.tsv").write_text("a\t1 1 2\tyes\nb\t3\tno\n")
    monkeypatch.setenv("SPEECHPROMPT_CACHE", str(tmp_path / f"cache-{case}"))
    tool, args, stdin = {
        "stdin-to-stdout": ("sp-dedup", ["-", "-o", "-"], "a\t1 1 2 2 3\tyes\nb\t4 4\tno\n"),
        "bad-line": ("sp-dedup", ["-", "-o", "-"], "a\t1 1 2\tyes\na\t2\tno\n"),
        "cwd": ("sp-lmdata", ["units.tsv", "-o", "-"], None),
        "env": ("sp-assets", ["urls", "gslm-hubert100"], None),
        "usage-error": ("sp-score", ["--metric", "nonsense", "-"], ""),
    }[case]
    fresh = subprocess.run([str(BIN / tool), *args], input=stdin, capture_output=True, text=True, cwd=tmp_path)
    warm = forked(tool, args, stdin, cwd=tmp_path)
    if warm is None:
        pytest.skip("fresh processes asked for (SP_TEST_FORK=0 or SP_BIN)")
    assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert fresh.returncode == {"bad-line": 1, "usage-error": 2}.get(case, 0), fresh.stderr
    assert case != "env" or f"cache-{case}" in fresh.stdout
