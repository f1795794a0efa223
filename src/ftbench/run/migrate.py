"""From data to a typed result: the schema version checked, an older schema migrated, every
field validated, and what is wrong said in a few words.

``migrate`` is the one place an older ``result.json`` becomes the current schema; ``parse`` is
the one way plain data becomes a ``Result`` (or a ``Record``): ``read_result`` reads files
through it, the report's ``Run`` reads its data through it.
"""

from __future__ import annotations

from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from ftbench.run.fields import shown
from ftbench.run.schema import SCHEMA_VERSION, STATUSES, Record, Result

MAX_DEPTH = 64  # a config nests a few levels; JSON nested deeper is not a result

R = TypeVar("R", bound=Record)


class UnreadableResult(ValueError):
    """A ``result.json`` that is not a result; the message says why, in a few words, and
    ``who`` keeps what it says of its strategy and seed, if anything (a report counts it there)."""

    def __init__(self, reason: str, who: dict | None = None) -> None:
        super().__init__(reason)
        self.who = who or {}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A result of any schema this ftbench reads, as data of the current schema (``data`` is
    not changed). Schema 1 (also a record without ``schema``): the status its reader assumed
    where there is none (``completed`` with metrics, else ``failed``); fields that schema 2
    does not declare are left out (schema 1 allowed any)."""
    if data.get("schema", 1) == SCHEMA_VERSION:
        return data
    data = {**data, "schema": SCHEMA_VERSION}
    data.setdefault("status", "completed" if "metrics" in data else "failed")
    declared = _declared(Result, data)
    assert isinstance(declared, dict)  # a dict stays a dict
    return declared


def parse(data: object, model: type[R]) -> R:
    """``data`` (a parsed ``result.json``) as ``model``, migrated from its schema; raises
    ``UnreadableResult`` with the reason when it is no result."""
    if not isinstance(data, dict):
        raise UnreadableResult("not a JSON object")
    who = {k: _plain(data.get(k)) for k in ("strategy", "seed")}
    if _depth(data) > MAX_DEPTH:
        raise UnreadableResult("nested too deeply", who)
    version = data.get("schema", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise UnreadableResult(
            f"schema {shown(version)}; this ftbench reads schema {SCHEMA_VERSION} and older", who)
    try:
        return model.model_validate(migrate(data))
    except ValidationError as err:
        raise UnreadableResult(reason(err), who) from None


def problem(data: object) -> str | None:
    """Why ``data`` is not a result (the first thing found), or None."""
    try:
        parse(data, Result)
    except UnreadableResult as err:
        return str(err)
    return None


def reason(err: ValidationError) -> str:
    """The first thing wrong, as ``<field path> <what is wrong>``."""
    first = err.errors(include_url=False)[0]
    loc = [part for part in first["loc"] if isinstance(part, int) or part.isidentifier()]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    kind, value = first["type"], first.get("input")
    if kind == "extra_forbidden":
        what = f"is not a field of result schema {SCHEMA_VERSION}"
    elif kind == "missing":
        what = "is missing"
    elif where == "status":
        what = f"{shown(value)} is not one of {', '.join(STATUSES)}" if isinstance(value, str) \
            else "is not a string"
    elif kind in ("part", "shape", "figure", "judged"):
        what = first["msg"]
    else:
        what = f"is not valid ({first['msg']})"
    return f"{where} {what}" if where else what


def _declared(model: type[BaseModel], data: object) -> object:
    """``data`` with only the fields ``model`` declares, at every level it declares."""
    if not isinstance(data, dict):
        return data
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    kept = {}
    for key, value in data.items():
        if key not in fields:
            continue
        inner = _model_in(fields[key].annotation)
        if inner is not None:
            value = ([_declared(inner, v) for v in value] if isinstance(value, list)
                     else _declared(inner, value))
        kept[key] = value
    return kept


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _model_in(arg)) is not None), None)


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _plain(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
