"""``python -m scseg`` and the ``scseg`` console script: choose the allocator, then run the CLI."""

import sys

from scseg.allocator import reexec_with_tcmalloc


def main() -> None:
    """Re-execute with tcmalloc if needed (before the CLI's imports), then run the command line."""
    reexec_with_tcmalloc(sys.argv)
    from scseg.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
