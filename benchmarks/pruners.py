"""Search cost and quality of each pruner: median, successive halving, hyperband, none.

The same tuned search (the same strategies, trials and sampler seed) runs once per
``tune.pruner.kind``, each in a fresh sweep folder and followed by final runs on one seed, on
the embedded default. Per kind: the share of search trials pruned, the search's wall-clock (its
trials' own, summed), the whole command's, and each strategy's best validation accuracy and
tuned test accuracy; ratios against ``median`` (the shipped default), measured in the same run.
A pruner earns its place by saving search time at the same quality: the same best validation
accuracy, since that is what picks the configuration the final runs retrain.

    python -m benchmarks.pruners [--kinds median,successive_halving,hyperband,none]
                                 [--strategies full,gradual,lp_ft,partial] [overrides ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine, timed
from ftbench.report.collect import collect
from ftbench.report.tuned import TUNED, tunings

KINDS = "median,successive_halving,hyperband,none"
# the strategies whose plans change their trained groups late (gradual, lp_ft) beside ones that
# train their final set from the first epoch (full, partial): where fair pruning matters
STRATEGIES = "full,gradual,lp_ft,partial"


def run(kind: str, strategies: str, overrides: list[str], folder: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "ftbench.train", "-m", "experiment=tuned", f"tune.strategies=[{strategies}]",
           "tune.seeds=1", f"tune.pruner.kind={kind}", f"hydra.sweep.dir={folder}", *overrides]
    seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True))
    if proc.returncode != 0:
        sys.exit(f"the {kind} search failed:\n{proc.stderr[-2000:]}")
    items = tunings(collect(folder))
    trials = sum(len(t.trials) for t in items)
    return seconds, {
        "trials": trials,
        "pruned": sum(t.count("pruned") for t in items),
        "search_seconds": sum(t.search_cost("wall_seconds") for t in items),
        "best_val": {t.strategy: t.best.result.metrics.val_acc if t.best else None for t in items},
        "tuned_test": {t.strategy: b.mean if (b := t.interval(TUNED)) else None for t in items},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=KINDS)
    parser.add_argument("--strategies", default=STRATEGIES)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. tune.trials=4")
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    print(f"pruners benchmark on {machine()}: strategies {args.strategies}, "
          f"overrides {' '.join(args.overrides) or 'none'}")
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            seconds, found[kind] = run(kind, args.strategies, args.overrides, Path(tmp) / kind)
            found[kind]["command_seconds"] = seconds
            print(f"  {kind}: done in {seconds:.0f} s", flush=True)
    base = found.get("median")
    print("\n| pruner | pruned | search wall-clock | / median | whole command | best val acc (mean over "
          "strategies) | tuned test acc (mean, 1 seed) |\n|---|---|---|---|---|---|---|")
    for kind, f in found.items():
        ratio = f"{f['search_seconds'] / base['search_seconds']:.2f}" if base else "n/a"
        vals = [v for v in f["best_val"].values() if v is not None]
        tests = [v for v in f["tuned_test"].values() if v is not None]
        print(f"| {kind} | {f['pruned']} of {f['trials']} | {f['search_seconds']:.0f} s | {ratio} "
              f"| {f['command_seconds']:.0f} s | {statistics.fmean(vals):.4f} "
              f"| {statistics.fmean(tests):.4f} |")
    print("\nbest validation accuracy per strategy:")
    for kind, f in found.items():
        print(f"  {kind:20s} " + "  ".join(f"{s} {v:.4f}" for s, v in f["best_val"].items() if v is not None))


if __name__ == "__main__":
    main()
