"""``trials(folder)``: the search trials of a tuned sweep, from its Optuna storage.

Read through Optuna's public API only (``get_all_study_summaries``, ``load_study``,
``Study.trials_dataframe``), on the SQLite file opened read-only: reading never creates,
migrates or changes a storage. The file must be a regular file (not a link) that starts as an
SQLite database, so a crafted ``optuna.db`` is refused like a crafted ``result.json``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from ftbench.results.sweeps import sweeps

STORAGE_FILE = "optuna.db"
SQLITE_HEADER = b"SQLite format 3\x00"


def read_only_url(path: Path) -> str:
    """An SQLAlchemy URL that opens the SQLite file ``path`` read-only."""
    return f"sqlite:///file:{quote(str(path.absolute()))}?mode=ro&uri=true"


def _is_sqlite_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def study_trials(storage) -> pd.DataFrame:
    """Every trial of every study in ``storage`` (a URL or an Optuna storage), with its study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frames = []
    for summary in optuna.get_all_study_summaries(storage=storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        frame = study.trials_dataframe()
        frame.insert(0, "study", summary.study_name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["study"])


def trials(folder: str | os.PathLike, storage: str | None = None) -> pd.DataFrame:
    """The trials of every study of a tuned sweep (each task's, in a suite): one row per trial,
    with ``task``, ``study``, Optuna's columns (``number``, ``value``, ``state``,
    ``params_<knob>``, ``user_attrs_<name>``, ``datetime_start``, ...).

    ``storage`` is the ``tune.storage`` URL the sweep used, if not its folder's ``optuna.db``;
    a folder without a storage gives no rows. ``ValueError`` names a file that looks like a
    database but holds no Optuna studies.
    """
    if storage is not None:
        return _with_task(study_trials(storage), Path(folder).name)
    frames = []
    for task, root in sweeps(folder):
        path = root / STORAGE_FILE
        if _is_sqlite_file(path):
            frames.append(_with_task(_read_file(path), task))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["task", "study"])


def _read_file(path: Path) -> pd.DataFrame:
    import optuna
    import sqlalchemy

    try:
        return study_trials(optuna.storages.RDBStorage(read_only_url(path), skip_table_creation=True))
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.OptunaError, RuntimeError) as err:
        cause: BaseException = err
        while cause.__cause__ is not None:  # Optuna wraps the database's own reason
            cause = cause.__cause__
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ValueError(f"{path}: not a readable Optuna storage ({reason})") from None


def _with_task(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    frame.insert(0, "task", task)
    return frame
