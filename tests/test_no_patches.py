"""No run-time patches: the package owns its code paths instead of bending fairseq's or torch's.

The loop of our own replaced fairseq's trainer, which sp-train used to drive through patched functions
(`fairseq_cli.train.validate_and_save`, `torch.cuda.amp.autocast`, `torch.cuda.is_available`). This test
reads every module of `tools/speechprompt` and fails on `unittest.mock`, and on any assignment, `setattr`,
`del` or `delattr` of an attribute of a name bound to a torch or fairseq module, or a change through its
`vars()`. One line is allowed by name, with its reason (CLEARED).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tools" / "speechprompt"
FOREIGN = ("torch", "fairseq", "fairseq_cli")
# fairseq caches the process group it makes for itself on a function and has no call to drop it; the cache is
# cleared after its run so that the group is freed before the interpreter's teardown (a gloo group alive then
# can abort the process). Clearing a cache changes none of fairseq's code paths.
CLEARED = {"fairseq_run.py": ["delattr(distributed_utils.get_global_group, ...)"]}
MUTATORS = {"pop", "popitem", "update", "clear", "setdefault", "__setitem__", "__delitem__"}


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

    def namespace_of_foreign(expression):  # `vars(torch.x)`: a foreign object's attributes, as a dict
        return isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name) \
            and expression.func.id == "vars" and expression.args and root(expression.args[0]) in foreign

    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            what = "deletes" if isinstance(node, ast.Delete) else "assigns"
            if isinstance(target, ast.Attribute) and root(target) in foreign \
                    or isinstance(target, ast.Subscript) and namespace_of_foreign(target.value):
                found.append(f"{node.lineno}: {what} {ast.unparse(target)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS \
                and namespace_of_foreign(node.func.value):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}(...)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                and node.args and root(node.args[0]) in foreign:
            found.append(f"{node.lineno}: {node.func.id}({ast.unparse(node.args[0])}, ...)")
    return sorted(found, key=lambda line: int(line.split(":")[0]))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_patches_torch_or_fairseq_at_run_time(path):
    found = [line.split(": ", 1)[1] for line in patches(path.read_text(encoding="utf-8"))]
    assert found == CLEARED.get(str(path.relative_to(PACKAGE)), [])


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
del fairseq_train.main
vars(torch.cuda).pop("is_available")
vars(fairseq_train)["main"] = None
delattr(torch.cuda, "is_available")
vars(x).pop("grad", None)
"""
    assert patches(source) == ["3: from unittest import ...", "5: assigns torch.cuda.is_available",
                               "6: assigns fairseq_train.validate_and_save",
                               "7: setattr(torch.cuda.amp, ...)", "10: deletes fairseq_train.main",
                               "11: vars(torch.cuda).pop(...)", "12: assigns vars(fairseq_train)['main']",
                               "13: delattr(torch.cuda, ...)"]
