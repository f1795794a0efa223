"""``python -m ftbench.report DIR``: the comparison of a multirun, from its ``result.json`` files.

One row per strategy (per strategy and study setting, e.g. ``lr_decay`` or ``train_fraction``
when a study varies them): test accuracy as mean and Student-t 95% interval over seeds, and
what it cost. Written as ``report.md``, ``report.csv`` and PNG plots into DIR. Failed jobs
(``status`` other than ``completed``, or a job folder with ``.hydra/`` and no result) are
listed as failed, never dropped. The same report is written by ``WriteReport``, a Hydra
callback, when a multirun ends.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from scipy import stats

from ftbench.results import RESULT_FILE

log = logging.getLogger("ftbench")

REPORT_MD, REPORT_CSV, PLOTS_DIR = "report.md", "report.csv", "plots"

# Settings a study may vary besides the strategy; a row is split by those that vary.
STUDY_KNOBS = {
    "model.name": "model", "dataset.name": "dataset", "dataset.train_fraction": "train_fraction",
    "strategy.lr": "lr", "strategy.lr_decay": "lr_decay", "strategy.unfreeze_every": "unfreeze_every",
    "strategy.trainable_groups": "trainable_groups", "strategy.probe_epochs": "probe_epochs",
    "trainer.max_epochs": "epochs", "optimizer.name": "optimizer", "optimizer.schedule": "schedule",
}


# -- reading runs ---------------------------------------------------------------------------------
def _lookup(config: dict, dotted: str):
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _killed_record(job_dir: Path) -> dict:
    """A job that left its Hydra config but no result: it crashed or was killed."""
    record = {"status": "failed", "error": f"no {RESULT_FILE} (the job crashed or was killed)"}
    try:
        config = OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra" / "config.yaml"),
                                        resolve=False)
    except (OSError, ValueError):
        config = None
    if isinstance(config, dict):
        record.update(config=config, strategy=_lookup(config, "strategy.name"),
                      model=_lookup(config, "model.name"), dataset=_lookup(config, "dataset.name"),
                      seed=config.get("seed"))
    return record


def collect(root: Path) -> list[dict]:
    """Every job under ``root``: its result, or a failed record where it left none."""
    job_dirs = {p.parent for p in root.rglob(RESULT_FILE)} | {p.parent for p in root.rglob(".hydra")}
    runs = []
    for job_dir in sorted(job_dirs):
        try:
            run = json.loads((job_dir / RESULT_FILE).read_text())
        except FileNotFoundError:
            run = _killed_record(job_dir)
        except (OSError, ValueError) as err:
            run = {"status": "failed", "error": f"unreadable {RESULT_FILE}: {err}"}
        run.setdefault("status", "completed" if "metrics" in run else "failed")
        run["dir"] = str(job_dir.relative_to(root)) if job_dir != root else "."
        runs.append(run)
    return runs


def completed(run: dict) -> bool:
    return run.get("status") == "completed" and run.get("metrics", {}).get("test_acc") is not None


# -- rows ---------------------------------------------------------------------------------------
@dataclass
class Row:
    """One strategy (and study setting) over its seeds."""

    strategy: str
    setting: dict = field(default_factory=dict)  # the study knobs that vary, e.g. {"lr_decay": 2}
    runs: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " ".join([self.strategy, *(f"{k}={v}" for k, v in self.setting.items())])

    def values(self, path: str) -> list[float]:
        out = []
        for run in self.runs:
            value = _lookup(run, path)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.append(float(value))
        return out

    def mean(self, path: str) -> float | None:
        values = self.values(path)
        return statistics.fmean(values) if values else None

    def ci95(self, path: str) -> float | None:
        """Half-width of the Student-t 95% interval of the mean; None below two seeds."""
        values = self.values(path)
        if len(values) < 2:
            return None
        return float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))

    def chance(self) -> float | None:
        classes = self.mean("data.num_classes")
        return 1.0 / classes if classes else None

    def gain_per_tflop(self) -> float | None:
        """Test accuracy above chance per TFLOP of training: what the compute bought."""
        acc, flops, chance = self.mean("metrics.test_acc"), self.mean("cost.train_flops"), self.chance()
        if acc is None or not flops or chance is None:
            return None
        return (acc - chance) / (flops / 1e12)


def group_rows(runs: list[dict]) -> list[Row]:
    """Rows in strategy order, split by the study knobs that vary within a strategy."""
    by_strategy: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_strategy[str(run.get("strategy") or "unknown")].append(run)
    rows: list[Row] = []
    for strategy in sorted(by_strategy, key=strategy_order):
        members = by_strategy[strategy]
        # what the completed runs vary: a failed job alone does not split a row
        done = [r for r in members if completed(r)] or members
        varying = [k for k in STUDY_KNOBS
                   if len({json.dumps(_lookup(r.get("config") or {}, k)) for r in done}) > 1]
        keyed: dict[tuple, Row] = {}
        for run in members:
            setting = {STUDY_KNOBS[k]: _lookup(run.get("config") or {}, k) for k in varying}
            row = keyed.setdefault(tuple(json.dumps(v) for v in setting.values()), Row(strategy, setting))
            (row.runs if completed(run) else row.failed).append(run)
        rows.extend(sorted(keyed.values(), key=lambda r: [_sortable(v) for v in r.setting.values()]))
    return rows


def _sortable(value) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def strategy_order(name: str) -> tuple[int, str]:
    from ftbench.strategies import STRATEGIES

    names = list(STRATEGIES)
    return (names.index(name) if name in names else len(names), name)


# -- tables -------------------------------------------------------------------------------------
COLUMNS = ["strategy", "setting", "runs", "failed", "test_acc_mean", "test_acc_ci95",
           "train_seconds", "train_flops", "peak_memory_mb", "trainable_params",
           "images_per_second", "acc_gain_per_tflop"]


def row_record(row: Row) -> dict:
    return {
        "strategy": row.strategy,
        "setting": " ".join(f"{k}={v}" for k, v in row.setting.items()),
        "runs": len(row.runs),
        "failed": len(row.failed),
        "test_acc_mean": row.mean("metrics.test_acc"),
        "test_acc_ci95": row.ci95("metrics.test_acc"),
        "train_seconds": row.mean("cost.train_seconds"),
        "train_flops": row.mean("cost.train_flops"),
        "peak_memory_mb": row.mean("cost.peak_memory_mb"),
        "trainable_params": row.mean("cost.trainable_params"),
        "images_per_second": row.mean("cost.images_per_second"),
        "acc_gain_per_tflop": row.gain_per_tflop(),
    }


def si(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def markdown_table(rows: list[Row]) -> str:
    lines = ["| strategy | runs | failed | test acc (95% CI) | train time | train FLOPs | peak memory "
             "| trainable params | images/s | acc gain / TFLOP |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row_record(row)
        acc = "n/a" if r["test_acc_mean"] is None else f"{r['test_acc_mean']:.4f}"
        if r["test_acc_ci95"] is not None:
            acc += f" ± {r['test_acc_ci95']:.4f}"
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
        lines.append(
            f"| {row.label} | {r['runs']} | {r['failed']} | {acc} | {fmt(r['train_seconds'], '.1f')} s "
            f"| {si(r['train_flops'], 'FLOP')} | {fmt(r['peak_memory_mb'], '.0f')} MB "
            f"| {si(r['trainable_params'])} | {fmt(r['images_per_second'], '.0f')} "
            f"| {fmt(r['acc_gain_per_tflop'], '.3g')} |")
    return "\n".join(lines)


def failed_table(runs: list[dict]) -> str:
    failed = [r for r in runs if not completed(r)]
    if not failed:
        return "None."
    lines = ["| status | strategy | seed | error | job folder |", "|---|---|---|---|---|"]
    for r in failed:
        error = str(r.get("error") or "").replace("|", "/").splitlines()
        lines.append(f"| {r.get('status')} | {r.get('strategy')} | {r.get('seed')} "
                     f"| {error[0] if error else ''} | {r['dir']} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row_record(row).items()})


def _context(runs: list[dict]) -> str:
    def values(path: str) -> str:
        found = sorted({str(_lookup(r, path)) for r in runs if _lookup(r, path) is not None})
        return ", ".join(found) or "n/a"

    seeds = sorted({r["seed"] for r in runs if r.get("seed") is not None})
    return (f"Model: {values('model')}. Dataset: {values('dataset')}. Seeds: "
            f"{', '.join(map(str, seeds)) or 'n/a'}. Jobs: {len(runs)}, of which "
            f"{sum(not completed(r) for r in runs)} failed.")


NOTES = """\
Test accuracy: mean over seeds ± half-width of the Student-t 95% interval (n/a below two
seeds). Train time: training wall-clock, validation excluded. FLOPs: multiply-adds of
convolutions, matrix products and attention (2 FLOPs each), forward and backward as run,
counted on the first real step of every phase of trainable groups. Peak memory: CUDA peak
allocated on GPU, process peak RSS on CPU. Acc gain / TFLOP: test accuracy above chance per
TFLOP of training. Drift: ||w - w0|| / ||w0|| per layer group at the end of training."""


def write_report(root: Path, runs: list[dict] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and the plots into ``root``; return their paths.

    ``runs`` are the jobs ``collect(root)`` read, if the caller has them already.
    """
    from ftbench import plots  # matplotlib is imported only when a report is drawn

    runs = collect(root) if runs is None else runs
    rows = group_rows(runs)
    plot_dir = root / PLOTS_DIR
    plot_paths = plots.draw_all(rows, plot_dir)
    paths = {"report.md": root / REPORT_MD, "report.csv": root / REPORT_CSV, **plot_paths}
    write_csv(paths["report.csv"], rows)
    images = "\n\n".join(f"### {title}\n\n![{title}]({path.relative_to(root)})"
                         for title, path in plot_paths.items())
    paths["report.md"].write_text(
        f"# Fine-tuning strategies compared\n\n{_context(runs)}\n\n{markdown_table(rows)}\n\n"
        f"{NOTES}\n\n## Failed runs\n\n{failed_table(runs)}\n\n## Plots\n\n{images}\n")
    return paths


def summary_text(runs: list[dict], paths: dict[str, Path]) -> str:
    out = io.StringIO()
    out.write(markdown_table(group_rows(runs)) + "\n\n")
    if any(not completed(r) for r in runs):
        out.write(f"Runs without a result:\n\n{failed_table(runs)}\n\n")
    for name, path in paths.items():
        out.write(f"{name}: {path}\n")
    return out.getvalue()


def record_failure(job_dir: Path, job_return: JobReturn) -> None:
    """A failed job's record, unless the job wrote its own: what failed, and with which config."""
    if (job_dir / RESULT_FILE).exists():
        return
    from ftbench.failures import write_failure  # here: the report command itself needs no torch

    error = job_return._return_value
    write_failure(job_dir, job_return.cfg, error if isinstance(error, BaseException)
                  else RuntimeError("the job failed"))


class WriteReport(Callback):
    """Hydra callback: write the report into the sweep folder when a multirun ends.

    Hydra's basic sweeper raises once a batch holding a failed job has run and then skips
    ``on_multirun_end``; so after a failure the report is also rebuilt as each later job ends,
    and the last job leaves a report that lists every job, the failed ones included.
    """

    def __init__(self) -> None:
        self._seen_failure = False

    def _write(self, config: DictConfig) -> None:
        root = Path(config.hydra.sweep.dir)
        try:
            paths = write_report(root)
        except Exception as err:  # a broken report must not take the runs down with it
            log.error("report not written into %s: %s", root, err)
            return
        log.info("report: %s", paths["report.md"])

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status == JobStatus.FAILED:
            self._seen_failure = True
            record_failure(Path(config.hydra.runtime.output_dir), job_return)
        if self._seen_failure and config.hydra.mode == RunMode.MULTIRUN:
            self._write(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._write(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ftbench.report", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a run or multirun folder")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"ftbench.report: error: {str(args.dir)!r} is not a folder", file=sys.stderr)
        return 2
    runs = collect(args.dir)
    if not runs:
        print(f"ftbench.report: error: no {RESULT_FILE} or job folder under {str(args.dir)!r}",
              file=sys.stderr)
        return 2
    print(summary_text(runs, write_report(args.dir, runs)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
