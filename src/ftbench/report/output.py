"""Where the report writes: ``plots/`` is the report's own folder, never written through a link
(the files themselves are written atomically, ``ftbench.run.atomic``; docs/report.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("ftbench")
REPORT_MD, REPORT_CSV, PLOTS_DIR = "report.md", "report.csv", "plots"  # every report's, in its folder


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
