"""Feature caching: linear_probe for 10 epochs, cached against uncached, on the embedded default.

Three ways to run the same fit and test (timed in this process, so imports are excluded):

- ``uncached``: the backbone runs on every batch of every epoch;
- ``cached``: features computed once in the run, the head trains on them;
- ``stored``: features read from a feature store that an earlier run filled
  (``data.feature_store=DIR``), as for every later seed or head-only strategy of a sweep.

Target: at least 20x less wall-clock than ``uncached`` at equal accuracy (within 1 point).

    python -m benchmarks.feature_cache [--epochs 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import machine, make_cfg, median, quiet, timed, verdict
from ftbench.train import fit

MODES = {"uncached": ["data.cache_features=false"], "cached": [], "stored": []}


def run(epochs: int, mode: str, store: Path) -> tuple[float, dict]:
    extra = [f"data.feature_store={store}"] if mode == "stored" else []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg("strategy=linear_probe", f"trainer.max_epochs={epochs}", *MODES[mode], *extra,
                       run_dir=Path(tmp))
        return timed(lambda: fit(cfg, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    quiet()
    print(f"feature_cache benchmark on {machine()}: linear_probe, {args.epochs} epochs")
    times: dict[str, list[float]] = {m: [] for m in MODES}
    accs: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as store:
        run(1, "stored", Path(store))  # warm-up, and fills the store the way a first run does
        for _ in range(args.repeats):
            for mode in MODES:
                seconds, result = run(args.epochs, mode, Path(store))
                times[mode].append(seconds)
                accs[mode].append(result["metrics"]["test_acc"])
                print(f"  {mode:8s} {seconds:7.2f} s  test_acc {result['metrics']['test_acc']:.4f}")
    base = median(times["uncached"])
    print("median: " + ", ".join(f"{m} {median(t):.2f} s" for m, t in times.items()))
    for mode in ("cached", "stored"):
        print(verdict(f"uncached / {mode} wall-clock", base / median(times[mode]), 20.0))
        gap = abs(median(accs[mode]) - median(accs["uncached"])) * 100
        print(verdict(f"{mode} accuracy gap (points)", gap, 1.0, higher_is_better=False))


if __name__ == "__main__":
    main()
