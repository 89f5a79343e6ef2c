"""Entry point of the repository's own pre-commit hooks (see .pre-commit-config.yaml).

``python scripts/precommit_hook.py secrets FILE...`` runs the secret guard of
``inv sops.check``; ``whitespace [--fix] FILE...`` the whitespace hygiene check. Both live
in ``tasks/`` as standard-library-only modules; they are loaded here without running
``tasks/__init__.py``, so the hook environment needs none of the task library's
dependencies.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_tasks_package() -> None:
    """Make ``tasks.<module>`` importable without executing ``tasks/__init__.py``."""
    if "tasks" not in sys.modules:
        package = types.ModuleType("tasks")
        package.__path__ = [str(ROOT / "tasks")]
        sys.modules["tasks"] = package


def main() -> int:
    load_tasks_package()
    command, *args = sys.argv[1:] or ["help"]
    if command == "secrets":
        from tasks.lib.secrets.scan import main as secrets_main

        return secrets_main(args)
    if command == "whitespace":
        from tasks.lib.hygiene import main as whitespace_main

        return whitespace_main(args)
    print("usage: precommit_hook.py secrets|whitespace [--fix] FILE...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
