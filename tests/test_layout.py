"""The tests mirror the library: every module of `tasks/lib` has its unit tests at the same
place under `tests/lib` (`tasks/lib/config/schema.py` -> `tests/lib/config/test_schema.py`),
and every such test module belongs to a library module."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "tasks" / "lib"
MIRROR = ROOT / "tests" / "lib"


def library_modules() -> list[Path]:
    """Every module of the library, relative to `tasks/lib` (packages' `__init__` left out)."""
    return sorted(path.relative_to(LIBRARY) for path in LIBRARY.rglob("*.py") if path.name != "__init__.py")


def mirrored(module: Path) -> Path:
    return module.with_name(f"test_{module.name}")


def test_every_library_module_has_its_unit_tests_at_the_mirrored_path() -> None:
    missing = [
        f"tasks/lib/{module} has no tests/lib/{mirrored(module)}"
        for module in library_modules()
        if not (MIRROR / mirrored(module)).is_file()
    ]
    assert not missing, "\n".join(missing)


def test_every_mirrored_test_module_names_a_library_module() -> None:
    expected = {mirrored(module) for module in library_modules()}
    strays = sorted(
        str(path.relative_to(MIRROR))
        for path in MIRROR.rglob("test_*.py")
        if path.relative_to(MIRROR) not in expected
    )
    assert not strays, f"tests/lib holds tests of no library module: {strays}"


def test_every_mirrored_folder_is_a_package() -> None:
    """pytest imports tests/lib/<area>/test_x.py as tests.lib.<area>.test_x: without the
    `__init__.py` two areas' test modules of the same name would collide."""
    folders = {path.parent for path in MIRROR.rglob("test_*.py")}
    assert all((folder / "__init__.py").is_file() for folder in folders)
