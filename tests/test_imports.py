"""Imports sit at the top of their module. A function imports something itself only where
`inv --list` needs it: in a module that `inv --list` loads, a module that `inv --list` does
not (so listing the tasks stays as light as Invoke's own floor). Anywhere else an import in a
function needs a `# deferred: <why>` comment on the line above it, kept rare: a module that
would make a hot path slow (a no-change `inv configure` must not load makejinja), or a cycle
that cannot be designed away."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_OPERATOR, ROOT

PACKAGE = ROOT / "tasks"
MARK = "# deferred:"

#: Run as `inv --list`, then write every module loaded to the file named by argv[1].
LIST_AND_DUMP = """
import atexit, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["inv", "--list"]
from tasks.__main__ import main
main()
"""


@dataclass(frozen=True)
class FunctionImport:
    path: Path
    line: int
    module: str  # the importing module, dotted
    imported: tuple[str, ...]  # the modules it loads, dotted
    reason: str  # what the `# deferred:` comment above it says ("" without one)

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def dotted(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(root: Path, name: str) -> bool:
    """Whether ``name`` is a module of this project (rather than a name inside one)."""
    relative = Path(*name.split("."))
    return (root / relative.with_suffix(".py")).is_file() or (root / relative / "__init__.py").is_file()


def imported_modules(
    root: Path, node: ast.Import | ast.ImportFrom, module: str, package: bool
) -> tuple[str, ...]:
    if isinstance(node, ast.Import):
        return tuple(alias.name for alias in node.names)
    base = node.module or ""
    if node.level:
        parent = module.split(".") if package else module.split(".")[:-1]
        parent = parent[: len(parent) - (node.level - 1)]
        base = ".".join([*parent, base] if base else parent)
    # `from tasks.lib.secrets import keys` loads the submodule `keys`, not only the package.
    return tuple(
        f"{base}.{alias.name}" if is_module(root, f"{base}.{alias.name}") else base for alias in node.names
    )


def deferred_reason(lines: list[str], line: int) -> str:
    above = lines[line - 2].strip() if line >= 2 else ""
    return above.removeprefix(MARK).strip() if above.startswith(MARK) else ""


def function_imports(path: Path, root: Path = ROOT) -> Iterator[FunctionImport]:
    """Every import inside a function (or a method) of the module at ``path``."""
    text = path.read_text()
    lines = text.splitlines()
    module = dotted(root, path)
    package = path.name == "__init__.py"

    def walk(node: ast.AST, in_function: bool) -> Iterator[FunctionImport]:
        reason, end = "", 0  # a marker covers the imports on the lines right below it
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                reason = deferred_reason(lines, child.lineno) or (reason if child.lineno == end + 1 else "")
                end = child.end_lineno or child.lineno
                imported = imported_modules(root, child, module, package)
                yield FunctionImport(path, child.lineno, module, imported, reason)
            else:
                yield from walk(
                    child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                )

    yield from walk(ast.parse(text), False)


def all_function_imports() -> list[FunctionImport]:
    return [found for path in sorted(PACKAGE.rglob("*.py")) for found in function_imports(path)]


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    """Every module loaded by `inv --list`, as it really runs."""
    out = tmp_path_factory.mktemp("list") / "modules"
    env = {**os.environ, "HOME_OPS_OPERATOR_DIR": str(EXAMPLE_OPERATOR)}
    subprocess.run(
        [sys.executable, "-c", LIST_AND_DUMP, str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return frozenset(out.read_text().splitlines())


def test_inv_list_loads_the_collections_and_little_else(listed: frozenset[str]) -> None:
    """The set the rule below leans on is real: the collections are in it, the heavy
    libraries of single tasks are not."""
    assert {"tasks.root", "tasks.dev", "tasks.talos", "invoke"} <= listed
    assert not listed & {
        "makejinja",
        "jinja2",
        "ruamel.yaml",
        "cryptography",
        "mdformat",
        "tasks.lib.config.configure",
    }


def test_a_function_imports_only_what_inv_list_must_not_load(listed: frozenset[str]) -> None:
    wrong = []
    for found in all_function_imports():
        if found.reason:
            continue
        if found.module not in listed:
            wrong.append(f"{found.where()}: {found.module} is not loaded by `inv --list`: import at the top")
        elif all(name in listed for name in found.imported):
            already = ", ".join(found.imported)
            wrong.append(f"{found.where()}: `inv --list` loads {already} anyway: import at the top")
    assert not wrong, "\n".join(wrong)


def test_every_deferred_import_says_why() -> None:
    """A bare marker is no reason."""
    bare = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.strip() == MARK
    ]
    assert not bare


def test_the_rule_sees_a_misplaced_import(tmp_path: Path) -> None:
    """The walk finds imports nested in methods and resolves relative and submodule imports."""
    package = tmp_path / "tasks" / "lib" / "area"
    package.mkdir(parents=True)
    module = package / "thing.py"
    module.write_text(
        "class A:\n"
        "    def f(self):\n"
        "        from . import other\n"
        "        # deferred: a cycle\n"
        "        from ..errors import UserError\n"
        "        import os\n"
        "\n"
        "        import sys\n"
        "        return os, sys\n"
        "\n"
        "def g():\n"
        "    import os\n"
    )
    found = list(function_imports(module, root=tmp_path))
    assert [(f.line, f.imported, f.reason) for f in found] == [
        (3, ("tasks.lib.area",), ""),
        (5, ("tasks.lib.errors",), "a cycle"),
        (6, ("os",), "a cycle"),  # the marker covers the imports right below it
        (8, ("sys",), ""),
        (12, ("os",), ""),
    ]
