"""Feature caching: linear_probe for 10 epochs, cached against uncached, on the embedded default.

Times the whole fit and test of each (in this process, so imports are excluded), and checks
that accuracy is unchanged. Target: at least 20x less wall-clock at equal accuracy (within
1 point).

    python -m benchmarks.feature_cache [--epochs 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import machine, make_cfg, median, quiet, timed, verdict
from ftbench.train import fit


def run(epochs: int, cached: bool) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg("strategy=linear_probe", f"trainer.max_epochs={epochs}",
                       f"data.cache_features={str(cached).lower()}", run_dir=Path(tmp))
        return timed(lambda: fit(cfg, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    quiet()
    print(f"feature_cache benchmark on {machine()}: linear_probe, {args.epochs} epochs")
    run(1, cached=True)  # warm-up
    times = {True: [], False: []}
    accs = {True: [], False: []}
    for _ in range(args.repeats):
        for cached in (False, True):
            seconds, result = run(args.epochs, cached)
            times[cached].append(seconds)
            accs[cached].append(result["metrics"]["test_acc"])
            print(f"  {'cached  ' if cached else 'uncached'} {seconds:7.2f} s  "
                  f"test_acc {result['metrics']['test_acc']:.4f}")
    speedup = median(times[False]) / median(times[True])
    gap = abs(median(accs[True]) - median(accs[False])) * 100
    print(f"median: uncached {median(times[False]):.2f} s, cached {median(times[True]):.2f} s")
    print(verdict("uncached / cached wall-clock", speedup, 20.0))
    print(verdict("accuracy gap (points)", gap, 1.0, higher_is_better=False))


if __name__ == "__main__":
    main()
