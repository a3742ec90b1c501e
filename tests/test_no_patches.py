"""No run-time patches: the package owns its code paths instead of bending fairseq's or torch's.

The loop of our own replaced fairseq's trainer, which sp-train used to drive through patched functions
(`fairseq_cli.train.validate_and_save`, `torch.cuda.amp.autocast`, `torch.cuda.is_available`). This test
reads every module of `tools/speechprompt` and fails on `unittest.mock`, and on any assignment (or
`setattr`) onto an attribute of a name bound to a torch or fairseq module.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tools" / "speechprompt"
FOREIGN = ("torch", "fairseq", "fairseq_cli")


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def patches(source: str) -> list[str]:
    """Each run-time patch in `source`, as `line: what`."""
    tree = ast.parse(source)
    foreign = set()  # local names bound to a torch or fairseq module (or something imported from one)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FOREIGN:
                    foreign.add((alias.asname or alias.name).split(".")[0])
                if alias.name.startswith("unittest"):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FOREIGN:
                foreign |= {alias.asname or alias.name for alias in node.names}
            if node.module.startswith("unittest"):
                found.append(f"{node.lineno}: from {node.module} import ...")

    def root(expression):
        while isinstance(expression, (ast.Attribute, ast.Subscript)):
            expression = expression.value
        return expression.id if isinstance(expression, ast.Name) else None

    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and root(target) in foreign:
                found.append(f"{node.lineno}: assigns {ast.unparse(target)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                and node.args and root(node.args[0]) in foreign:
            found.append(f"{node.lineno}: {node.func.id}({ast.unparse(node.args[0])}, ...)")
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_patches_torch_or_fairseq_at_run_time(path):
    assert patches(path.read_text(encoding="utf-8")) == []


def test_the_check_finds_the_patches_it_looks_for():
    source = """
import torch
from unittest import mock
from fairseq_cli import train as fairseq_train
torch.cuda.is_available = lambda: False
fairseq_train.validate_and_save = None
setattr(torch.cuda.amp, "autocast", None)
x = torch.zeros(3)
x.grad = None  # a tensor of ours: not a module of theirs, but its root name is not foreign either
"""
    assert patches(source) == ["3: from unittest import ...", "5: assigns torch.cuda.is_available",
                               "6: assigns fairseq_train.validate_and_save",
                               "7: setattr(torch.cuda.amp, ...)"]
