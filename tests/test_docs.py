"""The project as a stranger finds it: every link of the documentation resolves, the README stays short,
no file points outside the repository, and the package stays in small modules without import cycles."""
import ast
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "tools" / "speechprompt"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked(*patterns):
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def prose(text):
    """Markdown without code: fenced blocks, indented blocks, inline code spans and HTML comments."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    text = re.sub(r"(?s)<!--.*?-->", "", text)
    text = "\n".join(line for line in text.splitlines() if not line.startswith(("    ", "\t")))
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    """GitHub's anchor of every heading: lower case, punctuation dropped, spaces made `-`, repeats numbered."""
    seen, found = {}, set()
    for line in re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6} (.+?)\s*#*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


DOCS = sorted(set(tracked("*.md")))


def test_the_documentation_is_there():
    names = {str(p.relative_to(ROOT)) for p in DOCS}
    assert {"README.md", "RESULTS.md", "docs/README.md", "docs/tasks.md", "docs/tools.md", "docs/formats.md",
            "docs/make.md", "docs/assets.md", "docs/scaling.md", "docs/gpu.md", "docs/design.md",
            "tasks/units/gsc-hubert100/README.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_relative_link_and_anchor_resolves(doc):
    broken = []
    for target in LINK.findall(prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto: are not checked (no network here)
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if ROOT not in file.parents and file != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (file.is_dir() or file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_catches_a_missing_file_and_a_missing_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A title\n\n## Second `part` (x → y)\n\nsee [b](#second-part-x--y) and `[no](#code)`\n")
    assert anchors(page) == {"a-title", "second-part-x--y"}
    assert LINK.findall(prose(page.read_text())) == ["#second-part-x--y"]


def test_the_readme_is_short_and_names_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "    make TASK=SCR predict" in readme and "    make test" in readme
    for task in sorted(p.stem for p in (ROOT / "tasks").glob("*.mk") if p.stem not in ("FOLDERS", "TABLE")):
        assert f"\n| {task} |" in readme, task  # the task rows, one table
        assert re.search(rf"(?m)^## {task}\b|^## GID and SID", (ROOT / "docs" / "tasks.md").read_text()), task


def test_every_tool_is_in_the_tools_table():
    scripts = re.findall(r'(?m)^(sp-\w+) = "', (ROOT / "tools" / "pyproject.toml").read_text())
    table = (ROOT / "docs" / "tools.md").read_text(encoding="utf-8")
    assert len(scripts) >= 15
    for tool in scripts:
        assert table.count(f"\n| `{tool}` |") == 1, tool


def test_no_file_of_the_project_names_a_path_outside_it():
    outside = "../" + "shared"  # spelled in two parts, so this file does not name it either
    named = [str(p.relative_to(ROOT)) for p in tracked() if p.suffix not in (".gz",)
             and outside in p.read_text(encoding="utf-8", errors="replace")]
    assert named == []


def test_no_module_of_the_package_is_over_400_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 20 and {name: n for name, n in sizes.items() if n > 400} == {}


def module_file(parts):
    base = PACKAGE.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def direct_imports(path):
    """The package's modules that `path` names in an import statement (not the packages above them)."""
    here = list(path.parent.relative_to(PACKAGE).parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            bases = [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == PACKAGE.name]
            found |= {module_file(b) for b in bases}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == PACKAGE.name:
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                found.add(module_file(base + [alias.name]) or module_file(base))
    return found - {None, path}


def test_the_package_has_no_import_cycles():
    # A package's __init__ that imports its own modules so they register (encoders/) composes the package;
    # it is not an arrow between modules, so it is left out. Every other import is an arrow.
    graph = {p: {q for q in direct_imports(p) if not (p.name == "__init__.py" and q.parent == p.parent)}
             for p in PACKAGE.rglob("*.py")}
    assert graph[PACKAGE / "assets.py"] >= {PACKAGE / "asset_store.py", PACKAGE / "asset_registry.py"}
    done, path = set(), []

    def visit(node):
        if node in path:
            cycle = path[path.index(node):] + [node]
            raise AssertionError("import cycle: " + " -> ".join(str(p.relative_to(PACKAGE)) for p in cycle))
        if node in done:
            return
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            visit(successor)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
