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

import threading
import time
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from ftbench.run.trials import best_trial as best_of

FINAL_STUDY = "final"
# the study's trials that ran and were decided; a stale trial (failed for lack of heartbeat)
# has no outcome and does not count: its retry does
OUTCOME = "outcome"
CREATE_ATTEMPTS = 4

optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats outside Study.optimize are what several workers need; Optuna marks them experimental
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*Heartbeat of storage is supposed to be used with Study.optimize")


def storage_url(tune, sweep_dir: str) -> str:
    """``tune.storage``, or an SQLite file in the sweep folder."""
    return tune.storage or f"sqlite:///{sweep_dir}/optuna.db"


def open_storage(url: str, heartbeat_seconds: float) -> optuna.storages.BaseStorage:
    """``url``: an RDB URL (``sqlite:///path/optuna.db``, PostgreSQL, MySQL), with heartbeats;
    or ``journal:PATH`` for Optuna's journal file (no heartbeats: stale trials stay running)."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    # Workers started together would each create the tables of a new database, and all but
    # one fail ("table ... already exists"): an SQLite file is created under a file lock, and
    # a server database is retried once its tables exist.
    lock = FileLock(f"{url.removeprefix('sqlite:///')}.lock") if url.startswith("sqlite:///") \
        else nullcontext()
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with lock:
                return RDBStorage(url, heartbeat_interval=max(1, round(heartbeat_seconds)),
                                  grace_period=max(2, round(3 * heartbeat_seconds)),
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def pruner(tune) -> optuna.pruners.BasePruner:
    """Median pruning on per-epoch validation accuracy (``tune.pruner: null`` turns it off)."""
    if not tune.pruner:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=tune.pruner.startup_trials,
                                       n_warmup_steps=tune.pruner.warmup_epochs)


def search_study_name(strategy: str) -> str:
    return f"search-{strategy}"


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


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials whose worker stopped beating; they are queued again (journal storage
    keeps no heartbeats: there, a dead worker's trial stays running)."""
    optuna.storages.fail_stale_trials(study)


def ask(storage, study: optuna.Study, space: dict | None = None) -> optuna.Trial:
    """``study.ask``, with the trial's first heartbeat recorded at once: a trial without any
    heartbeat never goes stale, so a worker killed between asking and launching its job
    would leave it running for ever. ``storage``: the study's, as ``open_storage`` made it."""
    trial = study.ask(space)
    if isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() is not None:
        storage.record_heartbeat(trial._trial_id)
    return trial


@contextmanager
def heartbeat(storage, trial_ids: Iterable[int]) -> Iterator[None]:
    """Beat for ``trial_ids`` while their jobs run, so that other workers know they are alive."""
    ids = list(trial_ids)
    if not isinstance(storage, RDBStorage) or storage.get_heartbeat_interval() is None:
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
