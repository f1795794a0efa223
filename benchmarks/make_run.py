"""Wall-clock of the whole default comparison, exactly as ``make run`` runs it.

Every strategy x 2 seeds on the embedded default through Hydra multirun, in a fresh process,
then the best strategy's mean test accuracy and each strategy's mean accuracy under shift.
Targets: under 6 minutes on 2 CPU cores, the best strategy still at >= 96% test accuracy, and
the shifted test sets at most as long as everything else (they must not double the run).
``--seeds 3`` times the comparison with three seeds, the fewest whose intervals the report
does not flag.

    python -m benchmarks.make_run [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks.common import machine, timed, verdict
from ftbench.run.result import RESULT_FILE, read_result

BUDGET_SECONDS = 360.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--seeds", type=int, default=2, help="seeds per strategy (make run: 2)")
    seeds = parser.parse_args().seeds
    print(f"make_run benchmark on {machine()}, {seeds} seeds")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "ftbench.train", "-m", "experiment=compare",
               f"seed={','.join(str(s) for s in range(seeds))}", f"hydra.sweep.dir={tmp}"]
        seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True))
        if proc.returncode != 0:
            sys.exit(f"the comparison failed:\n{proc.stderr[-2000:]}")
        accs, shifted = defaultdict(list), defaultdict(list)
        shift_seconds = 0.0
        for path in Path(tmp).rglob(RESULT_FILE):
            result = read_result(path.parent)
            accs[result.strategy].append(result.metrics.test_acc)
            shifted[result.strategy].append(result.metrics.shift_mean)
            shift_seconds += result.cost.shift_eval_seconds or 0.0
    for name, values in sorted(accs.items()):
        shift = [v for v in shifted[name] if v is not None]
        shift_text = f"  mean shifted acc {statistics.mean(shift):.4f}" if shift else ""
        print(f"  {name:15s} runs {len(values)}  mean test_acc {statistics.mean(values):.4f}{shift_text}")
    best = max(accs, key=lambda k: statistics.mean(accs[k]))
    print(f"wall-clock {seconds:.1f} s for {sum(map(len, accs.values()))} runs, of which "
          f"{shift_seconds:.1f} s testing the shifted test sets")
    print(verdict("wall-clock / 6-minute budget", seconds / BUDGET_SECONDS, 1.0,
                  higher_is_better=False))
    print(verdict("shifted test sets / the rest of the wall-clock",
                  shift_seconds / max(1e-9, seconds - shift_seconds), 1.0, higher_is_better=False))
    print(verdict(f"best strategy ({best}) mean test accuracy",
                  statistics.mean(accs[best]), 0.96))


if __name__ == "__main__":
    main()
