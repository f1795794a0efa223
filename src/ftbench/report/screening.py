"""Which runs a report may compare: one test set, one run per seed, predictions that align.

Run before the tables and the verdict see any run, so that both rest on the same runs. A run left
out stays in the report as a record with status ``left out`` and the reason as its error. The
rules, for the report's reader: docs/report.md ("Which runs a report compares").
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from ftbench.report.collect import Run
from ftbench.report.rows import is_setting
from ftbench.run.predictions import Predictions, read_predictions
from ftbench.tracking.flat import leaves


def _test_hash(run: Run) -> str | None:
    return (run.result.data.split_hashes or {}).get("test")


def screen(root: Path, runs: list[Run]) -> list[Run]:
    """``runs`` with every run that cannot be compared like with like marked ``left out`` (its
    reason the run's error)."""
    reasons: dict[int, str] = {}
    tested = [r for r in runs if r.completed and r.result.judged_by == "test_acc"]
    reasons.update(_other_test_sets(tested))
    reasons.update(_repeated_seeds([r for r in tested if id(r) not in reasons]))
    reasons.update(_unaligned(root, [r for r in tested if id(r) not in reasons]))
    return [replace(r, left_out=reasons[id(r)]) if id(r) in reasons else r for r in runs]


def _short(digest) -> str:
    return f"{str(digest)[:8]}…"


def _other_test_sets(runs: list[Run]) -> dict[int, str]:
    """Runs tested on another test set than most (a run that records none can join any)."""
    known = [r for r in runs if _test_hash(r) is not None]
    counts = Counter(_test_hash(r) for r in known)
    if len(counts) < 2:
        return {}
    kept = max(counts, key=lambda h: (counts[h], -[_test_hash(r) for r in known].index(h)))
    return {id(r): (f"tested on another test set (data.split_hashes.test {_short(_test_hash(r))}) than the "
                    f"{counts[kept]} runs this report compares ({_short(kept)}): runs are paired only "
                    "on one test set; report it from a folder of its own")
            for r in known if _test_hash(r) != kept}


def _row_key(run: Run) -> str:
    """What makes two runs the same run: every setting (``rows.is_setting``), the seed
    and the tuned comparison's phase."""
    flat = {k: v for k, v in leaves(run.result.config).items() if is_setting(k)}
    return json.dumps([run.strategy, flat, run.result.seed, run.result.config_at("tune", "phase")],
                      sort_keys=True, default=str)


def _repeated_seeds(runs: list[Run]) -> dict[int, str]:
    first: dict[str, Run] = {}
    out = {}
    for run in runs:
        key = _row_key(run)
        if key in first:
            out[id(run)] = f"seed {run.result.seed} repeats the run in {first[key].dir}: one seed counts once"
        else:
            first[key] = run
    return out


def _test_set(root: Path, run: Run) -> tuple[Predictions | None, str | None]:
    """The run's test predictions, or why they cannot be used."""
    name = run.result.predictions
    if name is None:
        return None, "it kept no predictions, its peers did"
    if "/" in name or name.startswith("."):
        return None, f"its predictions file {name!r} is not a file of its folder"
    try:
        sets = read_predictions(root / run.dir / name)
    except (OSError, ValueError) as err:
        return None, f"its predictions are unreadable ({err})"
    if "test" not in sets:
        return None, "its predictions hold no test set"
    test = sets["test"]
    index = np.asarray(test.index).ravel()
    if len(np.unique(index)) != len(index):
        return None, "an example index appears twice in its test predictions"
    return test, None


def _unaligned(root: Path, runs: list[Run]) -> dict[int, str]:
    out: dict[int, str] = {}
    loaded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for run in runs:
        test, reason = _test_set(root, run)
        if test is None:
            out[id(run)] = reason or "its predictions hold no test set"
            continue
        order = np.argsort(np.asarray(test.index).ravel(), kind="stable")
        loaded[id(run)] = (np.asarray(test.index).ravel()[order], np.asarray(test.label).ravel()[order])
    if not loaded:
        return {}  # no run has predictions to align: the report falls back to intervals over seeds
    signature = {k: (i.tobytes(), lab.tobytes()) for k, (i, lab) in loaded.items()}
    counts = Counter(signature.values())
    reference = max(counts, key=lambda s: (counts[s], -list(signature.values()).index(s)))
    ref_index, ref_label = next(loaded[k] for k, s in signature.items() if s == reference)
    for key, (index, label) in loaded.items():
        if signature[key] == reference:
            continue
        if len(index) < len(ref_index) and np.isin(index, ref_index).all():
            out[key] = f"fewer test examples than its peers ({len(index)} of {len(ref_index)})"
        elif np.array_equal(index, ref_index):
            wrong = int((label != ref_label).sum())
            out[key] = f"its labels disagree with its peers' on {wrong} of {len(index)} test examples"
        else:
            out[key] = (f"its test examples ({len(index)}) are not the ones its peers were tested on "
                        f"({len(ref_index)})")
    return out
