"""``python -m harness`` = the ``harness`` command."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
