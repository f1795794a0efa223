"""The Optuna studies of a tuned comparison, kept in Optuna's own storage in the sweep folder.

One study per strategy holds its search trials; one more, ``final``, holds the final runs
(each strategy's best configuration and its default one, on every shared seed) as queued
trials, so that several processes (or SLURM jobs) started with the same command share the
work through the storage alone: a queued trial is handed to one worker only.

A worker keeps a heartbeat on the trials it runs; a trial whose worker died (killed, node
lost) stops beating, is failed after a grace period and queued again with the same
parameters (Optuna's ``fail_stale_trials`` and ``RetryHeartbeatStaleTrialCallback``). Completed
trials are never run again.
"""

from __future__ import annotations

import copy
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ftbench.run.trials import best_trial as best_of
from ftbench.tune import pruning

FINAL_STUDY = "final"
# the study's trials that ran and were decided; a stale trial (failed for lack of heartbeat)
# has no outcome and does not count: its retry does
OUTCOME = "outcome"
ABANDONED = "abandoned"  # why the search failed a trial it had asked for

BEATING = "beating"  # a trial's own number, once its first heartbeat is recorded (a retry copies it)

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Heartbeats, fail_stale_trials and the retry callback are what let several workers share a
# study; Optuna has marked them experimental since 2.x and says so at every call. The version
# range is pinned (pyproject.toml) to the one the tests cover, so the category is silenced.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def pruner(tune) -> optuna.pruners.BasePruner:
    """The pruner of ``tune.pruner`` (``ftbench.tune.pruning``; ``tune.pruner: null`` turns it off)."""
    return pruning.pruner(tune)


def search_study_name(strategy: str, task: str | None = None) -> str:
    """The search study of ``strategy`` (of ``task``, in a suite): the name the dashboard shows."""
    return f"{task}/search-{strategy}" if task else f"search-{strategy}"


def open_study(storage, name: str, tune) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                               pruner=pruner(tune), load_if_exists=True)


def create_once(storage, name: str, tune) -> tuple[optuna.Study, bool]:
    """The study, and whether this call created it (exactly one worker does)."""
    try:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                   pruner=pruner(tune), load_if_exists=False), True
    except optuna.exceptions.DuplicatedStudyError:
        return open_study(storage, name, tune), False


def seeded_sampler(tune, strategy: str, trial_number: int) -> optuna.samplers.TPESampler:
    """TPE seeded by the command's seed, the strategy and the trial's number: the same command
    asks the same trials, also after a restart (a sampler's own random state is not stored)."""
    seed = zlib.crc32(f"{tune.sampler_seed}:{strategy}:{trial_number}".encode())
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials,
                                      constant_liar=True)


def within_budget(study: optuna.Study, trial: optuna.Trial, budget: int) -> bool:
    """Is ``trial`` one of the first ``budget`` trials of the search? Workers that ask at once
    would each see room for one more; the storage numbers trials atomically, so the one whose
    earlier trials (decided, running or queued) already fill the budget gives way."""
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    pending = [t for t in earlier if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return len(_decided(earlier)) + len(pending) < budget


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count against the budget: run and decided (completed, pruned, or failed
    after running); not those failed for lack of heartbeat, whose retries count instead."""
    return _decided(study.get_trials(deepcopy=False))


def _decided(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    # a worker killed while telling leaves an outcome on a trial that then goes stale and is
    # retried: the retry counts, not it
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return [t for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and OUTCOME in t.user_attrs and t.number not in retried)]


def in_flight(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))


def fail_stale(storage, study: optuna.Study) -> None:
    """Fail the trials whose worker stopped beating; they are queued again.

    A trial that never beat (its worker died between asking for it and its first beat) is
    stale too once it has been running for the grace period: Optuna's own check passes over
    it, and the search would wait on it for ever. Journal storage keeps no heartbeats: there,
    a dead worker's trial stays running. ``storage``: the study's, as ``open_storage`` made it.
    """
    optuna.storages.fail_stale_trials(study)
    if not _beats(storage):
        return
    grace = timedelta(seconds=storage.grace_period or 2 * storage.get_heartbeat_interval())
    for trial in _never_beat(study):
        if trial.datetime_start is not None and _now(trial.datetime_start) - trial.datetime_start > grace:
            trial_id = storage_id(storage, study, trial.number)
            try:
                if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
                continue
            RetryHeartbeatStaleTrialCallback()(study, storage.get_trial(trial_id))


def _beats(storage) -> bool:
    return isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None


def _now(like: datetime) -> datetime:
    return datetime.now(like.tzinfo) if like.tzinfo else datetime.now()


def _never_beat(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's running trials whose first heartbeat was never recorded: ``ask`` marks a
    trial ``beating`` once it is (Optuna has no public way to read heartbeats)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(BEATING) != t.number]


def storage_id(storage, study: optuna.Study, number: int) -> int:
    """The storage's id of ``study``'s trial ``number``: what heartbeats and a search job's
    reports name a trial by (``BaseStorage``'s public interface)."""
    return storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), number)


def ask(storage, study: optuna.Study, space: dict | None = None) -> optuna.Trial:
    """``study.ask``, with the trial's first heartbeat recorded at once (a worker killed
    between asking and launching its job leaves a trial that goes stale), and the trial failed
    if its parameters cannot be set (a space whose distributions differ from the ones the
    study holds: Optuna raises): no trial is left running by a failure of the search itself.
    ``storage``: the study's, as ``open_storage`` made it."""
    with warnings.catch_warnings():
        # Optuna warns that heartbeats are meant for Study.optimize; several workers sharing a
        # study through ask/tell need them as much
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        trial = study.ask()
    if _beats(storage):
        storage.record_heartbeat(storage_id(storage, study, trial.number))
        trial.set_user_attr(BEATING, trial.number)
    try:
        for name, dist in (space or {}).items():
            suggest(trial, name, dist)
    except BaseException as err:
        trial.set_user_attr(ABANDONED, f"{type(err).__name__}: {err}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        raise
    return trial


def suggest(trial: optuna.Trial, name: str, dist: optuna.distributions.BaseDistribution):
    """``trial``'s value of ``name`` in ``dist`` (as ``study.ask(space)`` would set it)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, optuna.distributions.FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"{name}: no suggestion for a {type(dist).__name__}")


def abandon(study: optuna.Study, trials: Iterable[optuna.Trial], error: BaseException) -> None:
    """Fail the ``trials`` not yet told, because the search itself failed while they were out
    (an exception, Ctrl+C, SIGTERM), and queue each again, as a stale trial is: a later start
    runs it, or takes its job's result if that job finished."""
    for trial in trials:
        if frozen(study, trial).state.is_finished():
            continue
        try:
            trial.set_user_attr(ABANDONED, f"{type(error).__name__}: {error}"[:500])
            failed = study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        failed = copy.deepcopy(failed)  # the retry keeps the trial's own attributes, not these
        failed.user_attrs = {k: v for k, v in failed.user_attrs.items() if k not in (ABANDONED, OUTCOME)}
        RetryHeartbeatStaleTrialCallback()(study, failed)


def frozen(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """The stored state of ``trial``."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def retry_history(study: optuna.Study, trial: optuna.Trial) -> list[int]:
    """The numbers of the trials ``trial`` retries (queued again after each went stale)."""
    return list(RetryHeartbeatStaleTrialCallback.retry_history(frozen(study, trial)))


@contextmanager
def heartbeat(storage, trial_ids: Iterable[int]) -> Iterator[None]:
    """Beat for ``trial_ids`` while their jobs run, so that other workers know they are alive."""
    ids = list(trial_ids)
    if not _beats(storage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial_id in ids:
                storage.record_heartbeat(trial_id)
            if stop.wait(storage.get_heartbeat_interval()):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The search's best trial by ``ftbench.run.trials.best_trial``: a trial's value is its
    validation accuracy, its outcome the status its job recorded."""
    return best_of(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                   status=lambda t: t.user_attrs.get(OUTCOME), val_acc=lambda t: t.value,
                   number=lambda t: t.number)
