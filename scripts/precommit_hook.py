"""Entry point of the repository's own pre-commit hooks (see .pre-commit-config.yaml).

``python scripts/precommit_hook.py secrets FILE...`` runs the secret guard of
``inv sops.check``; ``whitespace [--fix] FILE...`` the whitespace hygiene check. Both are
standard-library-only modules of ``tasks/lib/``, and importing ``tasks`` loads nothing else,
so the hook environment needs none of the task library's dependencies.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
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
