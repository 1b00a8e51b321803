"""``tinyfed`` -- the one command-line entry point: a thin layer over :mod:`tinyfed`.

The verbs (build, verify, emulate, info, eval, fleet, simulate, demo) live in
:mod:`.commands`: flags -> options dataclass -> API function.  Here: the
parser and the one place errors become messages and exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tinyfed_toolchain.facts.errors import EXIT_INTERRUPTED, EXIT_REFUSED, TinyfedError  # noqa: E402

from . import commands  # noqa: E402


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyfed",
                                description="Private, federated on-device learning for microcontrollers.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    commands.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; a :class:`TinyfedError` becomes a one-line message and its exit code
    (see ``tinyfed_toolchain.facts.errors``); anything else is a bug and keeps its traceback."""
    args = _build_parser().parse_args(argv)
    fn: Callable[[argparse.Namespace], int] = args.fn
    try:
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        print("tinyfed: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TinyfedError as exc:
        print(f"tinyfed: error: {exc.headline}", file=sys.stderr)
        for line in exc.details:
            print(f"  {line}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named: a bug or the machine
            raise
        print(f"tinyfed: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
