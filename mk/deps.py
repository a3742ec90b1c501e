"""Print, for each sp-* tool, the package modules it imports (transitively), for mk/experiment.mk.

    python3 mk/deps.py tools/pyproject.toml > deps.mk   # DEPS.quantize := tools/speechprompt/quantize.py ...

One Make variable per tool of pyproject's [project.scripts], named without `sp-`. The imports are read with `ast`, so the list follows the code and cannot drift from it:
every `import speechprompt.x`, `from .x import y` and `from . import x`, also those inside
functions (the tools import slow modules lazily). Importing a module runs its packages'
`__init__.py` too; a package that loads its modules by name (`importlib.import_module`,
as datasets/ does) depends on all of them.
"""
import ast
import sys
import tomllib
from pathlib import Path


def module_path(package_dir: Path, name: str) -> Path | None:
    """The file of module `name` (dotted, without the top package), or None if it is not ours."""
    base = package_dir.joinpath(*name.split(".")) if name else package_dir
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported(package_dir: Path, path: Path) -> set[Path]:
    """The package's modules that `path` imports directly (with the `__init__.py` of their packages)."""
    top = package_dir.name
    here = path.parent.relative_to(package_dir).parts  # the package `path` belongs to
    names, dynamic = set(), False
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == top}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(here[:len(here) - node.level + 1])
                base = ".".join(parts + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == top:
                base = node.module[len(top) + 1:]
            else:
                continue
            names.add(f"{top}.{base}" if base else top)
            names |= {f"{top}.{base}.{a.name}" if base else f"{top}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            dynamic = True
    found = set()
    for name in names:
        parts = name.split(".")[1:]
        for n in range(len(parts) + 1):  # the module and every package above it
            module = module_path(package_dir, ".".join(parts[:n]))
            if module is not None:
                found.add(module)
    if dynamic and path.name == "__init__.py":
        found |= set(path.parent.glob("*.py"))
    return found - {path}


def closure(package_dir: Path, start: Path) -> list[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported(package_dir, path))
    return sorted(seen)


def main(pyproject: str) -> None:
    root = Path(pyproject).parent
    scripts = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]["scripts"]
    for command, entry in scripts.items():
        module = entry.split(":")[0]  # speechprompt.quantize
        package_dir = root / module.split(".")[0]
        paths = closure(package_dir, module_path(package_dir, ".".join(module.split(".")[1:])))
        print(f"DEPS.{command.removeprefix('sp-')} := {' '.join(map(str, paths))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
