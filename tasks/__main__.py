"""``inv`` (and ``python -m tasks``): this project's command line.

Kept to the standard library until the guard is in place, so that Ctrl-C at any moment,
even while Python is still loading Invoke, ends quietly with exit 130 instead of a
traceback.
"""

import gc
import sys


def main() -> None:
    try:
        from tasks.lib.guard import run_program

        run_program()
    except KeyboardInterrupt:  # before the guard was in place
        print("interrupted (Ctrl-C): stopped", file=sys.stderr)
        sys.exit(130)
    finally:
        # The process ends here: spare Python's shutdown its garbage collections over
        # everything a task loaded (a tenth of a second after a configure). Exit handlers
        # still run; only cycles of objects are left for the operating system to reclaim.
        gc.freeze()


if __name__ == "__main__":
    main()
