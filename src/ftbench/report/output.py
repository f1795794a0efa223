"""Where the report writes: its own files in the sweep folder, none of them through a link.

Every file of the report (``report.md``, ``report.csv``, each plot) is written to a temporary
file beside it and renamed into place (``ftbench.run.atomic``): a reader never sees half a
report, and a link standing where a file goes is itself replaced, its target left as it was.
The folder ``plots/`` is the report's own in the same way: a link standing there is replaced
by a real folder (the link's target keeps its files), never written through; anything else
there that is not a folder is left alone, and the plots are not drawn, with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("ftbench")


def own_folder(path: Path) -> Path | None:
    """``path`` as a real folder of the report's, made if needed; None if something else is there."""
    if path.is_symlink():
        target = os.readlink(path)
        path.unlink()
        log.warning("%s was a link to %s: replaced by a folder of the report's own (the link's target "
                    "is left as it was)", path, target)
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:
        pass
    if path.is_symlink() or not path.is_dir():
        log.warning("%s is not a folder: the plots are not drawn", path)
        return None
    return path
