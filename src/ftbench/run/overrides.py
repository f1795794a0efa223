"""Command-line overrides, read by Hydra's own parser (``OverridesParser``): one reading of
``key=value``, ``+key=value``, ``~key``, ``group/option=x`` and sweeps for every part of
ftbench (the tuned comparison, the suite, the study identity, progress lines, redaction)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from ftbench.run.errors import UserError


@cache
def _parser() -> OverridesParser:
    return OverridesParser.create()


def parse_overrides(arguments: Sequence[str]) -> list[Override]:
    """``arguments`` as Hydra reads them (``OverrideParseException`` for one it cannot)."""
    return _parser().parse_overrides(list(arguments))


def override_key(arg: str) -> str:
    """The config key an override sets, adds or deletes: ``++logger.api_key=x`` ->
    ``logger.api_key``, ``~seed`` -> ``seed``. An argument Hydra cannot parse still has the
    text before its ``=`` as its key: redaction must mask a secret in it before Hydra refuses it."""
    try:
        return parse_overrides([arg])[0].key_or_group
    except OverrideParseException:
        return arg.partition("=")[0].lstrip("+~").partition("@")[0]


def single_valued(arguments: Sequence[str], experiment: str, allowed: str) -> list[Override]:
    """``arguments`` parsed, refused in one line if one is a sweep: ``experiment=...`` runs its
    own sweep, and every job gets these overrides as they are."""
    overrides = parse_overrides(arguments)
    for override in overrides:
        if override.is_sweep_override():
            raise UserError(f"{override.input_line!r}: experiment={experiment} runs its own sweep; "
                            f"allowed: single values ({allowed})")
    return overrides
