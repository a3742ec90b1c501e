"""`make bench` and the GPU check run outside the test suites; what they import from the library is
checked here, so that moving a function does not leave a benchmark that fails only when someone runs it."""
import ast
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(Path(__file__).parent.glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_a_bench_imports_names_the_library_has(script):
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("speechprompt"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ModuleNotFoundError:
                        missing.append(f"{node.module}.{alias.name}")
    assert not missing, f"{script.name} imports what the library does not have: {missing}"


def test_there_are_benches():
    assert len(SCRIPTS) >= 10
