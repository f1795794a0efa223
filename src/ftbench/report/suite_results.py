"""Reading a suite's folder: ``suite.yaml`` (which tasks, which strategies, written by the suite
and marking the folder as a suite's) and each task's results from its own sweep folder.
"""

from __future__ import annotations

import re
import stat
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ftbench.report import intervals, judgement, render, screening, tuned
from ftbench.report.collect import Run, collect
from ftbench.report.readings import train_flops
from ftbench.report.tables import unfinished
from ftbench.run.result import MAX_BYTES
from ftbench.stats.choice import check
from ftbench.stats.verdict import Verdict

SUITE_FILE = "suite.yaml"  # written by the suite into its folder: what it ran
TASK_FILE = "task.yaml"  # in each task's folder: the overrides its jobs ran with
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a folder name, never a path


def is_suite(root: Path) -> bool:
    return (Path(root) / SUITE_FILE).is_file()


@dataclass(frozen=True)
class SuiteRecord:
    """What ``suite.yaml`` says: the suite's name, protocol, strategies, seeds, margin and tasks."""

    name: str
    protocol: str
    strategies: tuple[str, ...]
    seeds: tuple
    margin: float
    model: str | None
    tasks: tuple[dict, ...]  # name, dataset, source, overrides
    settings: dict = field(default_factory=dict)  # the command's report.confidence and .resamples


def read_suite_record(root: Path) -> SuiteRecord:
    """``suite.yaml`` as data (nothing in it is evaluated); ``ValueError`` with the reason if it
    is not what a suite writes."""
    path = Path(root) / SUITE_FILE
    info = path.stat()
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
        raise ValueError(f"{path} is not a suite's file")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise ValueError(f"{path} has no list of tasks")
    tasks = []
    for task in data["tasks"]:
        if not isinstance(task, dict) or not isinstance(task.get("name"), str) \
                or not TASK_NAME.fullmatch(task["name"]):
            raise ValueError(f"{path}: a task without a valid name ({task!r})")
        tasks.append({"name": task["name"], "dataset": str(task.get("dataset", "?")),
                      "source": str(task.get("source", task["name"])),
                      "overrides": [str(o) for o in task.get("overrides") or []]})
    margin = data.get("margin", 0.01)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
        raise ValueError(f"{path}: margin {margin!r} is not a number >= 0")
    return SuiteRecord(name=str(data.get("name", Path(root).name)), protocol=str(data.get("protocol", "?")),
                       strategies=tuple(str(s) for s in data.get("strategies") or []),
                       seeds=tuple(data.get("seeds") or []), margin=float(margin),
                       model=None if data.get("model") is None else str(data["model"]), tasks=tuple(tasks),
                       settings={k: data[k] for k in ("confidence", "resamples") if k in data})


@dataclass
class Cell:
    """One strategy on one task: its test accuracy on each seed and what training cost.

    Its interval is the one the task's own report shows (from its verdict's draw over seeds and
    test examples); over seeds only (Student's t) where the runs kept no predictions.
    """

    strategy: str
    accuracies: dict = field(default_factory=dict)  # seed -> test accuracy
    runs: list[Run] = field(default_factory=list)
    train_flops: float | None = None  # one final run's, mean over seeds
    search_flops: float | None = None  # the tuned protocol's whole search; None without one
    bounds: intervals.Bounds | None = None  # set by read_task from the runs' predictions

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.accuracies.values()) if self.accuracies else None

    @property
    def interval(self) -> intervals.Bounds | None:
        """The mean test accuracy with its interval (``intervals.Bounds``)."""
        return self.bounds or intervals.over_seeds(list(self.accuracies.values()))

    @property
    def total_flops(self) -> float | None:
        """Training FLOPs of one final run, the search included where there was one."""
        if self.train_flops is None:
            return None
        return self.train_flops + (self.search_flops or 0.0)


@dataclass
class TaskResults:
    """A task's results: one cell per strategy that completed at least one run."""

    name: str
    dataset: str
    source: str
    folder: Path
    protocol: str  # compare | tuned, as its runs show
    cells: dict[str, Cell] = field(default_factory=dict)
    failed: list[Run] = field(default_factory=list)
    jobs: int = 0
    train_sizes: tuple[int, ...] = ()
    choice: dict = field(default_factory=dict)  # the margin, confidence and resamples of its intervals
    runs: list[Run] = field(default_factory=list)  # every run, as screened
    verdict: Verdict | None = None  # at ``choice``: the task's own report's (``render.folder_verdict``)

    def means(self) -> dict[str, float]:
        return {s: c.mean for s, c in self.cells.items() if c.mean is not None}


def read_task(root: Path, task: dict, choice: dict | None = None) -> TaskResults:
    """One task's results, its runs screened as its own report screens them (``screening``), its
    intervals at ``choice`` (margin, confidence, resamples; unset ones as the runs say)."""
    folder = Path(root) / task["name"]
    runs = collect(folder) if folder.is_dir() else []
    runs = screening.screen(folder, runs)
    is_tuned = tuned.is_tuned_sweep(runs)
    result = TaskResults(task["name"], task["dataset"], task["source"], folder,
                         "tuned" if is_tuned else "compare", jobs=len(runs),
                         failed=[r for r in runs if unfinished(r)])
    if is_tuned:
        for t in tuned.tunings(runs):
            if t.tuned:
                result.cells[t.strategy] = Cell(t.strategy, dict(t.tuned), list(t.tuned_runs),
                                                t.final_flops(), t.search_cost(train_flops))
    else:
        for run in runs:
            accuracy = run.result.metrics.test_acc
            if not run.completed or accuracy is None:
                continue
            cell = result.cells.setdefault(run.strategy, Cell(run.strategy))
            cell.accuracies[run.result.seed] = accuracy
            cell.runs.append(run)
        for cell in result.cells.values():
            flops = [v for r in cell.runs if (v := train_flops(r.result)) is not None]
            cell.train_flops = statistics.fmean(flops) if flops else None
    choice = result.choice = check(judgement.settings(runs, choice))
    result.runs = runs
    result.verdict, _, _ = render.folder_verdict(folder, runs, choice)
    for strategy, cell in result.cells.items():  # the intervals of the task's own report
        cell.bounds = intervals.of_runs(folder, cell.runs, choice, drawn=result.verdict, name=strategy)
    sizes = {r.result.data.train_size for c in result.cells.values() for r in c.runs}
    result.train_sizes = tuple(sorted(s for s in sizes if s is not None))
    return result


@dataclass
class SuiteResults:
    record: SuiteRecord
    tasks: list[TaskResults]

    @property
    def strategies(self) -> list[str]:
        """The suite's strategies, then any other a task's folder holds, in first-seen order."""
        seen = list(self.record.strategies)
        for task in self.tasks:
            seen += [s for s in task.cells if s not in seen]
        return seen

    def shared_sources(self) -> dict[str, list[str]]:
        by_source: dict[str, list[str]] = {}
        for task in self.tasks:
            by_source.setdefault(task.source, []).append(task.name)
        return {source: names for source, names in by_source.items() if len(names) > 1}


def read_suite_results(root: Path, choice: dict | None = None) -> SuiteResults:
    """The suite in ``root``; ``choice``: report settings given (the command line's), else the
    suite's (``suite.yaml``), else as each task's runs say."""
    record = read_suite_record(root)
    given = {k: v for k, v in (choice or {}).items() if v is not None}
    choice = {"margin": record.margin, **record.settings, **given}
    return SuiteResults(record, [read_task(root, task, choice) for task in record.tasks])
