"""What a tuned study is, recorded when it is created and checked whenever it is started again.

A tuned comparison's results are only as good as the promise that every trial and every final
run belongs to one protocol. Its identity is what shapes the trials and the final runs: the
strategies, each one's search space and defaults, the budget (``tune.trials``), the final
runs' seeds, the search seed, the sampler's seed and startup trials, the pruner, and the
command's overrides (those of the ``tune`` block that only say how to run it — batch,
storage, heartbeat — and of the console's progress and loggers left out). The first worker
records it in the storage, as the user attributes of a study of its own (``IDENTITY_STUDY``),
before any search study exists; every later start compares.

**A start that would change it is refused**, in one line naming each difference, before
anything runs: a larger budget or more seeds included. Continuing instead would have to rerun
what the change makes stale (the final runs of a strategy whose best changed, the default
runs on new seeds), with stale final runs kept apart in the report; a new sweep folder gives
the same answer without that risk, at the cost of the search already done.

A storage that holds no identity is new, unless it holds other studies (an Optuna storage of
something else, or a sweep started before identities were recorded) or the sweep folder holds
job results (its ``optuna.db`` deleted, emptied or truncated): both are refused, because
taking either for a new study would run the search again over the results it holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from ftbench.report.collect import RESULT_FILE
from ftbench.run.failures import UserError
from ftbench.run.overrides import parse_overrides
from ftbench.run.secret_overrides import redact_overrides

IDENTITY_STUDY = "ftbench-tuned-comparison"
ATTR = "identity"
CREATED_IN = "created_in"
WAIT_FOR_CREATOR = 30.0  # seconds a worker waits for the one creating the study to record it
# overrides that say how to run, not what: another value gives the same trials and runs
HOW_TO_RUN = ("tune.", "progress", "logger", "data.num_workers", "data.pin_memory",
              "trainer.enable_progress_bar")


def identity(tune, spaces: Mapping[str, Mapping[str, optuna.distributions.BaseDistribution]],
             defaults: Mapping[str, Mapping], seeds: Sequence[int], arguments: Sequence[str]) -> dict:
    """The study's identity, as plain JSON values."""
    return {
        "tune.strategies": list(spaces),
        "tune.trials": int(tune.trials),
        "tune.seeds": [int(s) for s in seeds],
        "tune.search_seed": int(tune.search_seed),
        "tune.sampler_seed": _plain(tune.sampler_seed),
        "tune.startup_trials": int(tune.startup_trials),
        "tune.pruner": _plain(tune.pruner),
        "search spaces": {s: {k: optuna.distributions.distribution_to_json(d) for k, d in space.items()}
                          for s, space in spaces.items()},
        "defaults": {s: _plain(d) for s, d in defaults.items()},
        "overrides": shaping_overrides(arguments),
    }


def shaping_overrides(arguments: Sequence[str]) -> list[str]:
    """The command's overrides that shape a trial or a final run, sorted, secrets masked."""
    kept = [o.input_line or "" for o in parse_overrides(arguments) if not _how_to_run(o.key_or_group)]
    return sorted(redact_overrides(kept))


def _how_to_run(key: str) -> bool:
    return any(key.startswith(p) if p.endswith(".") else key == p or key.startswith((f"{p}.", f"{p}/"))
               for p in HOW_TO_RUN)


def _plain(value):
    value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return json.loads(json.dumps(value, default=str))


def differences(recorded: Mapping, current: Mapping) -> list[str]:
    """Each way ``current`` differs from ``recorded``, in words."""
    found = []
    for key, now in current.items():
        then = recorded.get(key)
        if then == now:
            continue
        if key in _PER_STRATEGY and isinstance(then, dict):
            what, show = _PER_STRATEGY[key]
            changed = [_knobs(f"{what} of strategy={s}", then[s], now[s], show)
                       for s in now if s in then and then[s] != now[s]]
            found += changed or ([] if any(s not in then for s in now) else [f"{key} changed"])
        elif key == "overrides" and isinstance(then, list):
            added = " ".join(o for o in now if o not in then)
            removed = " ".join(o for o in then if o not in now)
            parts = [part for part in (added and f"added {added}", removed and f"removed {removed}") if part]
            found.append(f"the command's overrides changed ({'; '.join(parts)})")
        else:
            found.append(f"{key} changed {_show(then)} -> {_show(now)}")
    return found


def _knobs(what: str, then: Mapping, now: Mapping, show) -> str:
    def shown(values: Mapping, knob: str) -> str:
        return show(values[knob]) if knob in values else "none"

    changes = [f"{k}: {shown(then, k)} -> {shown(now, k)}"
               for k in dict.fromkeys([*then, *now]) if then.get(k) != now.get(k)]
    return f"{what} changed ({', '.join(changes)})"


def _distribution(text: str) -> str:
    return repr(optuna.distributions.json_to_distribution(text))


_PER_STRATEGY = {"search spaces": ("the search space", _distribution), "defaults": ("the defaults", repr)}


def _show(value) -> str:
    return "none" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)


def holds_results(sweep_dir: Path) -> bool:
    """Whether the sweep folder holds a job's result."""
    return Path(sweep_dir).is_dir() and next(Path(sweep_dir).rglob(RESULT_FILE), None) is not None


def refuse_fresh_over_results(what: str, sweep_dir: Path) -> None:
    """A storage about to start afresh (``what`` says which) in a sweep folder that holds job
    results: refused, so that no result is run again or overwritten."""
    if holds_results(sweep_dir):
        raise UserError(f"{what} holds no study, but {sweep_dir} holds job results ({RESULT_FILE}); "
                        "starting afresh would run them again and overwrite them; allowed: the storage "
                        "this sweep was started with (tune.storage), or a new hydra.sweep.dir")


def record_or_check(storage, current: dict, sweep_dir: Path, shown_url: str) -> None:
    """Record ``current`` as the identity of a new study, or refuse a start that differs from
    the recorded one (``UserError``, one line)."""
    names = [s.study_name for s in storage.get_all_studies()]
    if IDENTITY_STUDY not in names:
        if names:
            raise UserError(f"tune.storage={shown_url!r} holds Optuna studies "
                            f"({', '.join(sorted(names)[:4])}) but not this sweep's record of what it "
                            "compares; allowed: the storage of a tuned comparison, an empty one, or a new "
                            "hydra.sweep.dir")
        refuse_fresh_over_results(f"tune.storage={shown_url!r}", sweep_dir)
        try:
            study = optuna.create_study(study_name=IDENTITY_STUDY, storage=storage)
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it meanwhile
            pass
        else:
            study.set_user_attr(CREATED_IN, str(sweep_dir))
            study.set_user_attr(ATTR, current)
            return
    recorded, created_in = _recorded(storage)
    if recorded is None:  # its creator died before recording it: the first to get here does
        study = optuna.load_study(study_name=IDENTITY_STUDY, storage=storage)
        study.set_user_attr(CREATED_IN, str(sweep_dir))
        study.set_user_attr(ATTR, current)
        return
    found = differences(recorded, current)
    if found:
        allowed = "the original value" if len(found) == 1 else "the original values"
        raise UserError(f"{'; '.join(found)} since this study was created in {created_in}; "
                        f"allowed: {allowed}, or a new hydra.sweep.dir")


def _recorded(storage) -> tuple[dict | None, str]:
    deadline = time.monotonic() + WAIT_FOR_CREATOR
    while True:
        attrs = optuna.load_study(study_name=IDENTITY_STUDY, storage=storage).user_attrs
        if ATTR in attrs or time.monotonic() > deadline:
            return attrs.get(ATTR), attrs.get(CREATED_IN, "?")
        time.sleep(0.5)
