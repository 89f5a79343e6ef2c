"""Regenerate the generated documentation: the task catalog in README.md and docs/tasks/*.md
(from the live collections) and the key reference in docs/configuration.md (from the config
model in tasks/lib/config/schema.py).

Run after adding, renaming or re-documenting a task or a config key:
``python scripts/update_catalog.py``. ``--check`` changes nothing and exits 1 when a file is
stale (tests/test_docs.py and tests/lib/config/test_reference.py do the same).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks import ns  # noqa: E402
from tasks.lib.catalog import stale_files, update_files  # noqa: E402
from tasks.lib.config import reference  # noqa: E402


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_files(ROOT, ns)
        for path in stale:
            print(f"{path.relative_to(ROOT)}: task catalog is stale — run python scripts/update_catalog.py")
        if reference.stale(ROOT):
            print(f"{reference.DOC}: config reference is stale — run python scripts/update_catalog.py")
            return 1
        return 1 if stale else 0
    for path in update_files(ROOT, ns):
        print(f"updated {path.relative_to(ROOT)}")
    if reference.update(ROOT):
        print(f"updated {reference.DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
