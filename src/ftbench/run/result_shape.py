"""Whether data has the shape of a ``result.json``: the check ``read_result`` makes.

Parts of the wrong type, figures that are not finite numbers of a sane size, a status that is
not one of ``STATUSES``, nesting deeper than any result: each is a reason a record is listed as
unreadable, not a crash of whatever reads it later.
"""

from __future__ import annotations

import math

SCHEMA_VERSION = 1
STATUSES = ("completed", "pruned", "failed", "diverged")
MAX_DEPTH = 64          # a config nests a few levels; JSON nested deeper is not a result
# no measurement comes near this: a larger figure is taken for none, so that sums, means and
# spreads over any number of runs stay finite
MAX_MAGNITUDE = 1e100


_PARTS = {"metrics": dict, "config": dict, "cost": dict, "data": dict, "versions": dict, "runtime": dict,
          "history": list, "groups": list}
_TEXTS = ("status", "strategy", "model", "dataset", "error", "predictions")


def problem(data: object) -> str | None:
    """Why ``data`` is not a result (the first thing found), or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if _depth(data) > MAX_DEPTH:
        return "nested too deeply"
    schema = data.get("schema", SCHEMA_VERSION)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema > SCHEMA_VERSION:
        return f"schema {_shown(schema)}; this ftbench reads schema {SCHEMA_VERSION} and older"
    for key, kind in _PARTS.items():
        if key in data and not isinstance(data[key], kind):
            found = "null" if data[key] is None else type(data[key]).__name__
            return f"{key} is {found}, not {'an object' if kind is dict else 'a list'}"
    for key in ("history", "groups"):
        if not all(isinstance(entry, dict) for entry in data.get(key) or []):
            return f"{key} holds an entry that is not an object"
    for key in _TEXTS:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key} is not a string"
    if data.get("status") is not None and data["status"] not in STATUSES:
        return f"status {_shown(data['status'])} is not one of {', '.join(STATUSES)}"
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return "seed is not an integer"
    for path, (fits, shape) in _SHAPES.items():
        part, key = path.split(".")
        value = (data.get(part) or {}).get(key)
        if value is not None and not fits(value):
            return f"{path} is not {shape}"
    for part, fields in _ENTRY_SHAPES.items():
        for i, entry in enumerate(data.get(part) or []):
            for key, (fits, shape) in fields.items():
                if entry.get(key) is not None and not fits(entry[key]):
                    return f"{part}[{i}].{key} is not {shape}"
    if data.get("status", "completed" if "metrics" in data else "failed") == "completed":
        metric = judged_by(data)
        if number((data.get("metrics") or {}).get(metric)) is None:
            return f"metrics.{metric} is {_shown((data.get('metrics') or {}).get(metric))}, not a number"
    return None


def _shown(value) -> str:
    """A value in a reason: its repr, cut short (the value may be megabytes of text)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers_by_name(value) -> bool:
    return isinstance(value, dict) and all(v is None or number(v) is not None for v in value.values())


def _numbers(value) -> bool:
    return isinstance(value, list) and all(v is None or number(v) is not None for v in value)


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _counts_table(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(line, list) and len(line) == len(value) and all(_count(c) for c in line) for line in value)


# The parts a reader relies on inside the record, where present and not null: a part of another
# shape makes the record no result (scalar figures elsewhere, read as numbers, count as absent
# when they are not one).
_SHAPES = {
    "metrics.per_class_test_acc": (_numbers_by_name, "an object of numbers"),
    "metrics.shift": (_numbers_by_name, "an object of numbers"),
    "metrics.confusion_matrix": (_counts_table, "a square table of counts"),
    "cost.drift": (_numbers_by_name, "an object of numbers"),
    "data.classes": (_names, "a list of names"),
}
_ENTRY_SHAPES = {
    "history": {"epoch": (_count, "a count"), "val_acc": (lambda v: number(v) is not None, "a number"),
                "lrs": (_numbers, "a list of numbers"), "trainable_groups": (_names, "a list of names")},
    "groups": {"name": (lambda v: isinstance(v, str), "a name")},
}


def _depth(value, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def number(value) -> float | None:
    """``value`` as a figure, or None if it is none: not a number, not finite, or beyond
    ``MAX_MAGNITUDE``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and abs(value) <= MAX_MAGNITUDE else None


def judged_by(data: dict) -> str:
    """The metric a completed record must hold: ``test_acc``, or ``val_acc`` for a run that was
    never tested (a search trial of the tuned comparison is judged on validation only)."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    tested = (config.get("run") or {}).get("test", True) if isinstance(config.get("run"), dict) else True
    tune = config.get("tune")
    if not tested or (isinstance(tune, dict) and tune.get("phase") == "search"):
        return "val_acc"
    return "test_acc"
