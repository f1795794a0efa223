"""Command-line overrides read as text, where Hydra's parser is not at hand (argv before Hydra
starts, the override strings a job's config lists)."""

from __future__ import annotations


def override_key(arg: str) -> str:
    """The config key an override sets, adds or deletes: ``++logger.api_key=x`` ->
    ``logger.api_key``, ``~seed`` -> ``seed``."""
    return arg.partition("=")[0].lstrip("+~")
