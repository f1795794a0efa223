"""Running a suite: each task's comparison into ``<suite folder>/<task>/``, one task after another.

- ``compare``: every strategy of the suite on every seed at its defaults, one job folder each
  (``<strategy>_seed<k>``): a normal sweep folder with its own report.
- ``tuned``: the tuned comparison of ``ftbench.tune.protocol`` in the task's folder, with its own
  Optuna studies and its own search cost.

Jobs go through the configured Hydra launcher, as a sweep's do. Started again, the same command
reruns nothing that completed: a ``compare`` job whose folder holds a completed (or diverged)
result is skipped here, since the run folder itself does not refuse a multirun's job; the tuned
comparison continues from its studies. A task's folder records what its jobs override
(``task.yaml``), and a restart that would change it is refused before anything runs: a result
found there must be the result of the job about to be skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ftbench.config import job_config, validate_config
from ftbench.data.sources import load_splits
from ftbench.finetune.strategies import registered
from ftbench.report.callback import write_report_quietly, write_suite_report_quietly
from ftbench.report.collect import collect
from ftbench.report.suite_results import SUITE_FILE, TASK_FILE
from ftbench.run.atomic import write_text
from ftbench.run.checks import number
from ftbench.run.failures import UserError, one_line
from ftbench.run.overrides import override_key, single_valued
from ftbench.run.result import job_record
from ftbench.run.reuse import FINISHED
from ftbench.run.secret_overrides import redact_overrides
from ftbench.suite.definition import Suite, Task, override_value, read_suite
from ftbench.tune.protocol import TunedComparison

log = logging.getLogger("ftbench")

# what the suite sets for every job, and the setting that says it instead
RESERVED = {"strategy": "benchmark.strategies=[...]", "tune.strategies": "benchmark.strategies=[...]",
            "seed": "benchmark.seeds=[...]", "tune.seeds": "benchmark.seeds=[...]",
            "dataset": "a task's dataset in the suite's YAML"}
DEFAULT_MARGIN = 0.01
NOT_JOBS = ("benchmark", "report")  # override roots that change no job's result
REPORT_SETTINGS = ("margin", "confidence", "resamples")

Compose = Callable[[Sequence[str]], DictConfig]


class SuiteRun:
    """Runs ``config``'s suite through ``launcher``; ``load_config(overrides)`` composes a job's
    whole config (Hydra's node included), as the launcher will."""

    def __init__(self, config: DictConfig, launcher, load_config: Compose, arguments: Sequence[str]) -> None:
        self.config, self.launcher, self.load_config = config, launcher, load_config
        self.suite: Suite = read_suite(config, list(registered()))
        self.arguments = plain_arguments(arguments)
        self.root = Path(str(config.hydra.sweep.dir))
        self.margin = OmegaConf.select(config, "report.margin", default=DEFAULT_MARGIN)
        self.models: dict[str, str] = {}  # task -> the model its jobs run (their composed config)
        self.job_idx = 0

    # -- checks, before anything runs ----------------------------------------------------------
    def compose(self, overrides: Sequence[str], task_dir: Path) -> DictConfig:
        """A job's config without Hydra's node, as the job will check it."""
        return job_config(self.load_config(list(overrides)), str(task_dir))  # the task's folder

    def check(self) -> None:
        suite = self.suite
        number("report.margin", self.margin, at_least=0)
        if suite.protocol == "tuned":
            search_seed = self.config.tune.search_seed
            if search_seed in suite.seeds:
                raise UserError(f"tune.search_seed={search_seed} is one of benchmark.seeds="
                                f"{list(suite.seeds)}; allowed: final seeds apart from the search seed")
            if self.config.tune.get("storage"):
                raise UserError(f"tune.storage={self.config.tune.storage!r}: each task of a suite keeps "
                                "its own studies in its folder; allowed: tune.storage=null")
        for task in suite.tasks:
            self.check_folder(task)
            for strategy in suite.strategies:
                try:
                    cfg = self.compose(self.job_base(task, strategy), self.root / task.name)
                    validate_config(cfg)
                except (UserError, HydraException, OmegaConfBaseException) as err:  # a task's own values
                    raise UserError(f"benchmark task {task.name!r}: {one_line(err)}") from err
                self.models[task.name] = str(cfg.model.name)
            check_data(task.name, cfg)

    def task_record(self, task: Task) -> dict:
        """What a task's folder must have been started with for its results to be reused."""
        # benchmark.* act through the suite's definition: its strategies and seeds name the jobs;
        # report.* change the reports alone, which a restart rewrites
        overrides = [o for o in self.base(task) if override_key(o).split(".")[0] not in NOT_JOBS]
        record: dict[str, object] = {"task": task.name, "protocol": self.suite.protocol,
                  "overrides": redact_overrides(overrides)}
        if self.suite.protocol == "tuned":  # its studies were made for these
            record.update(strategies=list(self.suite.strategies), seeds=list(self.suite.seeds))
        return record

    def check_folder(self, task: Task) -> None:
        path = self.root / task.name / TASK_FILE
        if not path.is_file():
            return
        try:
            before = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"{str(path)!r} is not readable ({err}); allowed: the file the suite wrote, "
                            "or another hydra.sweep.dir") from err
        now = self.task_record(task)
        if isinstance(before, dict) and isinstance(before.get("overrides"), list):  # an older one kept all
            before["overrides"] = [o for o in before["overrides"]
                                   if override_key(str(o)).split(".")[0] not in NOT_JOBS]
        if before != now:
            before = before if isinstance(before, dict) else {}
            changed = [f"{k} {_difference(before.get(k), now[k])}" for k in now if before.get(k) != now[k]]
            raise UserError(f"benchmark task {task.name!r}: its folder {str(path.parent)!r} holds runs "
                            f"made with other settings ({'; '.join(changed)}); allowed: the command that "
                            "started them, or another hydra.sweep.dir")

    # -- the jobs ------------------------------------------------------------------------------
    def base(self, task: Task) -> list[str]:
        """The overrides of every job of ``task``: the suite's, the task's, then the command's."""
        return [*task.overrides, *self.arguments]

    def job_base(self, task: Task, strategy: str) -> list[str]:
        return [*self.base(task), f"strategy={strategy}", f"seed={self.suite.seeds[0]}",
                f"hydra.sweep.dir={override_value(str(self.root / task.name))}"]

    def run(self) -> None:
        self.check()
        self.root.mkdir(parents=True, exist_ok=True)
        write_text(self.root / SUITE_FILE, yaml.safe_dump(self.suite_record(), sort_keys=False))
        failed = []
        for position, task in enumerate(self.suite.tasks, 1):
            task_dir = self.root / task.name
            task_dir.mkdir(parents=True, exist_ok=True)
            write_text(task_dir / TASK_FILE, yaml.safe_dump(self.task_record(task), sort_keys=False))
            log.info("benchmark %s: task %d of %d, %s (%s)", self.suite.name, position,
                     len(self.suite.tasks), task.name, self.suite.protocol)
            try:
                if self.suite.protocol == "tuned":
                    self.run_tuned(task, task_dir)
                else:
                    self.run_compare(task, task_dir)
                if not any(r.completed and r.result.judged_by == "test_acc" for r in collect(task_dir)):
                    raise UserError("no job completed (no result)")  # a search trial is no result
            except UserError as err:  # this task's: the others still run
                log.error("benchmark task %s: %s", task.name, err)
                failed.append(f"{task.name}: {err}")
            write_report_quietly(task_dir, self.report_choice())
        if failed:  # Hydra writes no report after a sweep that raised
            write_suite_report_quietly(self.root)
            raise UserError(f"benchmark {self.suite.name}: {len(failed)} task(s) without a result or "
                            f"stopped ({'; '.join(failed)}); the report across tasks, which counts them "
                            f"as no result, is in {str(self.root)!r}")

    def report_choice(self) -> dict:
        """The report settings of this command (``report.*``): every report of the suite uses them."""
        return {k: OmegaConf.select(self.config, f"report.{k}", default=None) for k in REPORT_SETTINGS}

    def run_compare(self, task: Task, task_dir: Path) -> None:
        sweep_dir = f"hydra.sweep.dir={override_value(str(task_dir))}"
        # the task's sweep config, as Hydra's own sweeper saves it
        OmegaConf.save(self.load_config([*self.base(task), sweep_dir]), task_dir / "multirun.yaml")
        jobs, done = [], 0
        for strategy in self.suite.strategies:
            for seed in self.suite.seeds:
                folder = f"{strategy}_seed{seed}"
                if job_record(task_dir / folder).status in FINISHED:
                    done += 1
                    continue
                jobs.append([*self.base(task), f"strategy={strategy}", f"seed={seed}",
                             f"hydra.sweep.dir={override_value(str(task_dir))}",
                             f"hydra.sweep.subdir={folder}"])
        if done:
            log.info("benchmark task %s: %d job(s) completed before, not run again", task.name, done)
        if jobs:
            self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            self.job_idx += len(jobs)

    def run_tuned(self, task: Task, task_dir: Path) -> None:
        arguments = [*self.base(task), f"tune.strategies={override_value(list(self.suite.strategies))}",
                     f"tune.seeds={override_value(list(self.suite.seeds))}",
                     f"hydra.sweep.dir={override_value(str(task_dir))}"]
        comparison = TunedComparison(self.load_config(arguments), self.launcher,
                                     lambda overrides: self.compose(overrides, task_dir), arguments,
                                     task=task.name)
        comparison.job_idx = self.job_idx
        comparison.run()
        self.job_idx = comparison.job_idx

    def suite_record(self) -> dict:
        """``suite.yaml``: what the report across tasks reads (it marks the folder as a suite's)."""
        models = list(dict.fromkeys(self.models.values()))  # as the jobs run them, tasks' overrides included
        report = {k: v for k, v in self.report_choice().items() if k != "margin" and v is not None}
        return {"name": self.suite.name, "protocol": self.suite.protocol,
                "model": ", ".join(models) or OmegaConf.select(self.config, "model.name", default=None),
                "seeds": list(self.suite.seeds), "strategies": list(self.suite.strategies),
                "margin": float(self.margin), **report,
                "arguments": redact_overrides(self.arguments),
                "tasks": [{**task.as_record(), "model": self.models.get(task.name),
                           "job_overrides": redact_overrides(self.base(task))} for task in self.suite.tasks]}


def _difference(before, now) -> str:
    if isinstance(before, list) and isinstance(now, list):
        gone, new = [o for o in before if o not in now], [o for o in now if o not in before]
        if gone or new:
            return f"then {' '.join(map(str, gone)) or '-'}, now {' '.join(map(str, new)) or '-'}"
    return f"then {before}, now {now}"


def plain_arguments(arguments: Sequence[str]) -> list[str]:
    """The command's overrides, which every job gets; the suite sets strategies, seeds and datasets."""
    for override in single_valued(arguments, "benchmark", "benchmark.strategies=[...] and "
                                  "benchmark.seeds=[...] pick the strategies and seeds"):
        key = override.key_or_group
        if key in RESERVED:
            raise UserError(f"{override.input_line!r}: a suite sets {key} itself; allowed: {RESERVED[key]}")
    return list(arguments)


def check_data(task: str, cfg: DictConfig) -> None:
    """Load ``task``'s splits once before the suite's first job: a missing folder or a corrupt
    image stops the suite before anything runs, not that task's jobs one by one."""
    try:
        load_splits(cfg.dataset)
    except UserError as err:
        raise UserError(f"benchmark task {task!r}: {one_line(err)}") from err
