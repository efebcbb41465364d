"""The command line every W2 micro-benchmark module shares: ``--runs``, ``--warmup``,
``--length`` and ``--json``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from bench.workloads import W2_LENGTH

__all__ = ["w2_main"]


def w2_main(
    prog: str,
    description: str | None,
    measure: Callable[..., dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
) -> int:
    """Parse the options, run ``measure`` and print its report (as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--length", type=int, default=W2_LENGTH)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = measure(length=args.length, runs=args.runs, warmup=args.warmup)
    print(json.dumps(report) if args.json else render(report))
    return 0
