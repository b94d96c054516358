"""``python -m venetfilter.cli.gendocs --write contrib``: regenerate the shipped venetctl(8) and bash
completion from the parser (`venetfilter.cli.docs`); ``--check contrib`` exits 1 when they are stale."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .docs import REGENERATE, generated, write

__all__ = ["main", "stale"]


def stale(directory: Path) -> list[str]:
    """The generated files whose copy in `directory` is missing or differs."""
    return [name for name, text in generated().items()
            if not (directory / name).exists() or (directory / name).read_text() != text]


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the generated files."""
    parser = argparse.ArgumentParser(prog="python -m venetfilter.cli.gendocs", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="DIR", help="write venetctl.8 and the completion into DIR")
    action.add_argument("--check", type=Path, metavar="DIR", help="exit 1 when the copies in DIR are out of date")
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.write):
            print(f"wrote {path}")
        return 0
    names = stale(args.check)
    for name in names:
        print(f"{args.check / name} is out of date: run {REGENERATE}", file=sys.stderr)
    return 1 if names else 0


if __name__ == "__main__":
    sys.exit(main())
