"""``python -m ftbench.report DIR``: a comparison table from the ``result.json`` files in DIR."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from ftbench.results import RESULT_FILE


def collect(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob(RESULT_FILE))]


def completed(results: list[dict]) -> list[dict]:
    return [r for r in results if r.get("status", "completed") == "completed"]


def failures(results: list[dict]) -> str:
    """Failed and diverged runs, one line each: they have no metrics but must not go unseen."""
    failed = [r for r in results if r.get("status", "completed") != "completed"]
    if not failed:
        return ""
    lines = ["| status | strategy | seed | error |", "|---|---|---|---|"]
    lines += [f"| {r['status']} | {r.get('strategy')} | {r.get('seed')} | {r.get('error', '')} |"
              for r in failed]
    return "\n".join(lines)


def table(results: list[dict]) -> str:
    by_strategy: dict[str, list[dict]] = defaultdict(list)
    for r in completed(results):
        by_strategy[r["strategy"]].append(r)
    lines = ["| strategy | runs | test acc | train s |", "|---|---|---|---|"]
    for name, runs in by_strategy.items():
        acc = statistics.mean(r["metrics"]["test_acc"] for r in runs)
        secs = statistics.mean(r["cost"]["train_seconds"] for r in runs)
        lines.append(f"| {name} | {len(runs)} | {acc:.4f} | {secs:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ftbench.report", description=__doc__)
    parser.add_argument("dir", type=Path, help="a run or multirun folder")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"ftbench.report: error: {str(args.dir)!r} is not a folder", file=sys.stderr)
        return 2
    results = collect(args.dir)
    if not results:
        print(f"ftbench.report: error: no {RESULT_FILE} under {str(args.dir)!r}", file=sys.stderr)
        return 2
    print(table(results))
    if failed := failures(results):
        print(f"\nRuns without a result:\n\n{failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
