"""Strategies from other installed packages: the entry-point group ``ftbench.strategies``.

A package adds a strategy without ftbench importing it by name: its ``pyproject.toml`` says

    [project.entry-points."ftbench.strategies"]
    my_probe = "my_plugin.strategy"            # a module whose import calls register(...)
    # or: my_probe = "my_plugin.strategy:setup"  (a function, called with no arguments)

and its ``conf/strategy/my_probe.yaml`` joins Hydra's search path
(``hydra.searchpath=[pkg://my_plugin/conf]``). The plugins are loaded once, on the first read
of the registry (``ftbench.finetune.strategies.registered``), in every process that reads it:
a launcher's worker too.

A plugin that fails to load stops the command with one line naming its entry point, rather
than being skipped with a warning: a comparison that silently ran without a strategy the user
installed would answer another question than the one asked.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from ftbench.run.errors import UserError

GROUP = "ftbench.strategies"
_loaded = False


def load_plugins() -> None:
    """Import (and call, when it names a function) every entry point of ``GROUP``, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # first: a plugin that reads the registry while it loads does not load again
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            target = entry.load()
            if not isinstance(target, ModuleType):
                target()
        except Exception as err:  # any failure of another package's code: that plugin is broken
            _loaded = False  # the next read says so again, rather than read a partial registry
            raise UserError(f"{describe(entry)} failed to load: {type(err).__name__}: "
                            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}; "
                            "allowed: fix or uninstall that package") from err


def describe(entry: EntryPoint) -> str:
    """``strategy plugin 'my_probe = my_plugin.strategy' (entry point of ftbench.strategies in
    package my-plugin 0.1)``: enough to find the package to fix or uninstall."""
    dist = getattr(entry, "dist", None)
    package = f" in package {dist.name} {dist.version}" if dist is not None else ""
    return f"strategy plugin '{entry.name} = {entry.value}' (entry point of {GROUP}{package})"
