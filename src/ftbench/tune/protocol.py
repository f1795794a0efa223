"""The tuned comparison: every strategy searched within the same budget, then retrained.

1. **Search.** For each strategy, an Optuna study over the strategy's search space
   (``strategy.search`` in its YAML), maximising validation accuracy: ``tune.trials`` trials
   each, the first being the strategy's shipped defaults, then TPE (seeded). A trial is an
   ordinary ftbench run, launched through the configured Hydra launcher, that reports each
   epoch's validation accuracy to its trial; the median pruner stops hopeless ones early
   (their cost still counts). Trials never look at the test split.
2. **Final runs.** Each strategy's best configuration, and its default one, retrained on the
   same ``tune.seeds`` seeds for every strategy (never the search seed), and tested once.

Everything is kept in Optuna's storage in the sweep folder (``tune.storage``): the same command
started again continues where it stopped, and several copies of it (processes, SLURM jobs)
share the work (see ``ftbench.tune.studies``). What the study compares is recorded when it is
created; a start that would change it is refused (``ftbench.tune.identity``). Nothing runs before
the numbers (``tune.budget``), the spaces, the storage (``tune.storage``) and identity are checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RetryHeartbeatStaleTrialCallback

from ftbench.config import group_names, validate_config
from ftbench.run.failures import UserError
from ftbench.run.overrides import single_valued
from ftbench.run.redaction import redact_saved_configs, redact_text
from ftbench.run.result import RESULT_FILE, job_record
from ftbench.run.schema import Record
from ftbench.tune import identity, storage, studies
from ftbench.tune.budget import check_numbers
from ftbench.tune.space import as_choice, as_override, check_space, contains
from ftbench.tune.storage import is_empty

log = logging.getLogger("ftbench")

SEARCH, TUNED, DEFAULT = "search", "tuned", "default"
RESERVED = ("strategy", "seed", "tune.phase", "tune.study", "tune.trial_id", "tune.job", "tune.retry_of")
# A search trial is an ordinary run with a callback that reports to its Optuna trial; it is
# judged on validation only, never tested, saved or resumed (a dead trial runs again whole).
SEARCH_TRIAL = ("run.test=false", "run.checkpoint=false", "run.save_weights=false",
                "+callbacks.search_trial._target_=ftbench.tune.trial.search_trial",
                "+callbacks.search_trial.tune=${tune}")


class TunedComparison:
    """Runs the protocol through ``launcher``; ``compose(overrides)`` gives a job's config."""

    def __init__(self, config: DictConfig, launcher, compose, arguments: Sequence[str],
                 task: str | None = None) -> None:
        self.config, self.launcher, self.compose, self.task = config, launcher, compose, task
        self.tune = config.tune
        self.arguments = self._plain(arguments)
        self.strategies = list(self.tune.strategies)
        self.seeds: list[int] = []  # the final runs' seeds, once checked
        self.job_idx = 0
        self.spaces: dict[str, dict] = {}
        self.defaults: dict[str, dict] = {}
        self.storage: optuna.storages.BaseStorage | None = None

    @staticmethod
    def _plain(arguments: Sequence[str]) -> list[str]:
        """The command's overrides, which every job gets; the protocol sets strategy and seed."""
        for override in single_valued(arguments, "tuned", "tune.strategies=[...] picks the strategies"):
            key = override.key_or_group
            if key in RESERVED:
                raise UserError(f"{override.input_line!r}: the tuned comparison sets {key} itself; "
                                "allowed: tune.strategies=[...] and tune.seeds=K")
        return list(arguments)

    # -- checks, before anything runs ----------------------------------------------------------
    def check(self) -> None:
        self.seeds = check_numbers(self.tune)
        if not self.strategies:
            raise UserError("tune.strategies=[] is not valid; allowed: a list of strategies")
        studies.pruner(self.tune)  # a wrong tune.pruner is one line before anything runs
        for strategy in self.strategies:
            cfg = self.compose([*self.arguments, f"strategy={strategy}"])
            validate_config(cfg)
            space = check_space(cfg.strategy, group_names(cfg.model.name), cfg.trainer.max_epochs)
            if not space:
                raise UserError(f"strategy={strategy} has no search space (strategy.search); "
                                "allowed: a strategy whose YAML declares one")
            self.spaces[strategy] = space
            self.defaults[strategy] = {k: as_choice(cfg.strategy[k]) for k in space}

    # -- the protocol ----------------------------------------------------------------------------
    def run(self) -> None:
        self.check()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        url = storage.storage_url(self.tune, self.config.hydra.sweep.dir)
        shown = redact_text(url, secrets=[])
        if is_empty(url):  # an optuna.db deleted or emptied is no new study over old results
            identity.refuse_fresh_over_results(f"tune.storage={shown!r}", sweep_dir)
        if not self.tune.storage:
            make_folder(sweep_dir)  # the default storage's file goes there
        self.storage = storage.open_storage(url, self.tune.heartbeat_seconds)
        identity.record_or_check(self.storage, identity.identity(
            self.tune, self.spaces, self.defaults, self.seeds, self.arguments), sweep_dir, shown)
        make_folder(sweep_dir)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's own sweeper does
        redact_saved_configs(sweep_dir, "multirun.yaml")
        for strategy in self.strategies:
            log.info("tuned: searching %s (%d trials)", strategy, self.tune.trials)
            self.search(strategy)
        for strategy in self.strategies:  # trials other workers are still running
            self.settle(strategy)
        log.info("tuned: final runs on seeds %s", self.seeds)
        self.final()

    def search(self, strategy: str) -> bool:
        """Run the strategy's trials until its budget is asked for; whether it asked any."""
        name = studies.search_study_name(strategy, self.task)
        study, created = studies.create_once(self.storage, name, self.tune)
        if created and all(contains(d, self.defaults[strategy][k]) for k, d in self.spaces[strategy].items()):
            study.enqueue_trial(self.defaults[strategy])  # the search starts from the defaults
        asked = False
        while True:
            studies.fail_stale(self.storage, study)
            room = self.tune.trials - len(studies.counted(study)) - len(
                study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
            if room <= 0:
                return asked
            batch: list[optuna.Trial] = []
            try:
                for _ in range(min(room, self.tune.batch)):  # batch >= 1: each round asks
                    study.sampler = studies.seeded_sampler(self.tune, strategy, len(study.trials))
                    trial = studies.ask(self.storage, study, self.spaces[strategy])
                    asked = True
                    if studies.within_budget(study, trial, self.tune.trials):
                        batch.append(trial)
                    else:  # another worker asked the last trial of the budget at the same moment
                        trial.set_user_attr("surplus", True)
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if batch:
                    self.run_trials(study, strategy, batch)
            except BaseException as err:  # no trial is left running by the search's own failure
                studies.abandon(study, batch, err)
                raise

    def settle(self, strategy: str) -> None:
        """Wait for the trials other workers run; run those queued again meanwhile (a dead
        worker's). Returns once none runs: a queued trial beyond the budget stays queued."""
        study = studies.open_study(self.storage, studies.search_study_name(strategy, self.task), self.tune)
        while True:
            if self.search(strategy):  # it fails stale trials first, and queues them again
                continue
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                return
            time.sleep(self.tune.heartbeat_seconds)  # > 0: checked with the numbers

    def run_trials(self, study: optuna.Study, strategy: str, batch: list[optuna.Trial]) -> None:
        """Launch the trials' jobs together, and tell the study what each found."""
        fresh = []
        for trial in batch:
            record = self.finished_before(study, trial)
            if record is None:
                fresh.append(trial)
            else:  # its job ended but its worker died before telling: the run is not repeated
                trial.set_user_attr("reused", record.config_at("tune", "job"))
                tell(study, trial, record)
        if not (batch := fresh):
            return
        ids = [studies.storage_id(self.storage, study, t.number) for t in batch]
        jobs = [[*self.arguments, f"strategy={strategy}", *(as_override(k, v) for k, v in t.params.items()),
                 f"seed={self.tune.search_seed}", f"tune.phase={SEARCH}", f"tune.study={study.study_name}",
                 # the trial's storage id, so that the job reports to this very trial
                 f"tune.trial_id={trial_id}", f"tune.job=trial{t.number}", *SEARCH_TRIAL,
                 # the trials it runs again (their folders are no trials of their own in the report)
                 *([f"tune.retry_of={history}"] if (history := studies.retry_history(study, t)) else [])]
                for t, trial_id in zip(batch, ids, strict=True)]
        records = self.launch(jobs, ids)
        for trial, record in zip(batch, records, strict=True):
            tell(study, trial, record)

    def finished_before(self, study: optuna.Study, trial: optuna.Trial) -> Record | None:
        """For a trial queued again after its worker died: the record its first job left, if
        that job finished."""
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        first = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        if first is None:
            return None
        first_id = studies.storage_id(self.storage, study, first)
        for path in Path(self.config.hydra.sweep.dir, SEARCH).rglob(RESULT_FILE):
            record = job_record(path.parent)
            if record.config_at("tune", "trial_id") == first_id \
                    and record.status in ("completed", "pruned", "diverged"):
                return record
        return None

    def launch(self, jobs: list[list[str]], trial_ids: list[int]) -> list[Record]:
        with studies.heartbeat(self.storage, trial_ids):
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
        self.job_idx += len(jobs)
        return [job_record(Path(r.hydra_cfg.hydra.runtime.output_dir)) for r in returns]

    def final(self) -> None:
        study, created = studies.create_once(self.storage, studies.FINAL_STUDY, self.tune)
        if created:
            for config in (DEFAULT, TUNED):
                for strategy in self.strategies:
                    for seed in self.seeds:
                        study.enqueue_trial({}, user_attrs={"strategy": strategy, "seed": seed,
                                                            "config": config})
        while True:
            studies.fail_stale(self.storage, study)
            waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            if not waiting:
                if not studies.in_flight(study):
                    return
                time.sleep(self.tune.heartbeat_seconds)
                continue
            batch: list[optuna.Trial] = []
            try:
                for _ in range(min(len(waiting), self.tune.batch)):
                    batch.append(studies.ask(self.storage, study))
                self.final_runs(study, batch)
            except BaseException as err:  # no final run is left running by the search's own failure
                studies.abandon(study, batch, err)
                raise

    def final_runs(self, study: optuna.Study, batch: list[optuna.Trial]) -> None:
        """Launch the final runs of ``batch`` together, and tell the study what each found."""
        runs = []
        for trial in batch:
            job = self.final_job(trial)
            if job is None:  # nothing to run: the trial is marked done, and why
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                runs.append((trial, job))
        if runs:
            records = self.launch([job for _, job in runs], [studies.storage_id(self.storage, study, t.number)
                                                             for t, _ in runs])
            for (trial, _), record in zip(runs, records, strict=True):
                trial.set_user_attr(studies.OUTCOME, record.status)
                record_cost(trial, record)
                study.tell(trial, record.metrics.test_acc or 0.0)

    def final_job(self, trial: optuna.Trial) -> list[str] | None:
        """The overrides of a queued final run, or None when there is nothing to run: a trial
        another worker's ``ask`` created as the queue emptied, or a tuned run whose best
        configuration is the default one (its default run on the same seed is that very run)."""
        attrs = trial.user_attrs
        if "strategy" not in attrs:
            trial.set_user_attr(studies.OUTCOME, "nothing queued")
            return None
        strategy, config, seed = attrs["strategy"], attrs["config"], attrs["seed"]
        params = {}
        if config == TUNED:
            best = studies.best_trial(studies.open_study(
                self.storage, studies.search_study_name(strategy, self.task), self.tune))
            if best is None:
                raise UserError(f"strategy={strategy}: no search trial completed; the tuned "
                                "configuration cannot be chosen (see the search/ job logs)")
            params = best.params
            trial.set_user_attr("params", params)
            if params == self.defaults[strategy]:
                trial.set_user_attr(studies.OUTCOME, "the default run")
                return None
        return [*self.arguments, f"strategy={strategy}", *(as_override(k, v) for k, v in params.items()),
                f"seed={seed}", f"tune.phase={config}", f"tune.job=seed{seed}"]


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"hydra.sweep.dir={str(folder)!r}: cannot be created ({err.strerror or err}); "
                        "allowed: a folder this user can create and write") from err


def tell(study: optuna.Study, trial: optuna.Trial, record: Record) -> None:
    """Tell the study what a search job's ``result.json`` says, with what it cost."""
    status = record.status
    trial.set_user_attr(studies.OUTCOME, status)
    record_cost(trial, record)
    value = record.metrics.val_acc
    if status == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif status == "diverged":
        study.tell(trial, 0.0)  # a model that diverged is worth nothing: TPE learns to avoid it
    elif status == "completed" and value is not None:
        study.tell(trial, value)
    else:
        trial.set_user_attr("error", record.error or "no result")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def record_cost(trial: optuna.Trial, record: Record) -> None:
    """A job's training FLOPs and wall-clock as the trial's user attributes (the dashboard shows them)."""
    cost = {"train_flops": record.cost.train_flops, "train_seconds": record.cost.train_seconds}
    for key, figure in cost.items():
        if figure is not None:
            trial.set_user_attr(key, figure)
