"""Opening the Optuna storage of a tuned comparison, or one line saying why it cannot be opened.

``tune.storage`` is an RDB URL (``sqlite:///path/optuna.db``, PostgreSQL, MySQL), with
heartbeats, or ``journal:PATH`` for Optuna's journal file (no heartbeats); by default an SQLite
file in the sweep folder. Whatever cannot serve as the study's storage is refused in one line
(``UserError``, the URL's password masked) before Optuna writes anything into it:

- a URL Optuna cannot open: an unknown scheme, a database driver that is not installed, a
  server that cannot be reached, a file that cannot be created;
- an existing file that is not an SQLite database (random bytes, ``/etc/passwd``), or an SQLite
  database that holds tables other than Optuna's (another program's data, which Optuna would
  otherwise extend with its own tables); a journal file that is not Optuna's journal.

Whether a storage that opens holds *this* sweep's studies is ``ftbench.tune.identity``'s
question.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from urllib.request import pathname2url

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from ftbench.run.failures import UserError
from ftbench.run.redaction import redact_text

JOURNAL = "journal:"
SQLITE_HEADER = b"SQLite format 3\x00"
OPTUNA_TABLES = {"studies", "trials", "version_info"}  # present in every Optuna RDB storage
CREATE_ATTEMPTS = 4
ALLOWED = "sqlite:///PATH, postgresql://..., mysql://... (with its driver installed) or journal:PATH"


def storage_url(tune, sweep_dir: str) -> str:
    """``tune.storage``, or an SQLite file in the sweep folder."""
    return tune.storage or f"sqlite:///{sweep_dir}/optuna.db"


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None for another database, or SQLite in memory)."""
    if url.startswith(JOURNAL):
        return None
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def is_empty(url: str) -> bool:
    """Whether the storage at ``url`` is a file that does not exist yet, or is empty (0 bytes),
    as an SQLite or journal file that Optuna would start afresh."""
    path = Path(url.removeprefix(JOURNAL)) if url.startswith(JOURNAL) else sqlite_file(url)
    return path is not None and (not path.exists() or (path.is_file() and path.stat().st_size == 0))


def open_storage(url: str, heartbeat_seconds: float) -> optuna.storages.BaseStorage:
    """The storage at ``url``, checked to be readable as an Optuna storage, or ``UserError``."""
    shown = redact_text(url, secrets=[])
    try:
        if url.startswith(JOURNAL):
            storage = _journal(url.removeprefix(JOURNAL))
        else:
            storage = _rdb(url, heartbeat_seconds, shown)
        storage.get_all_studies()  # reads the whole journal, or the RDB's tables
        return storage
    except UserError:
        raise
    except ImportError as err:
        cause = err.__cause__ or err
        raise UserError(f"tune.storage={shown!r} needs a database driver that is not installed "
                        f"({cause}); allowed: install it, or {ALLOWED}") from err
    except sqlalchemy.exc.ArgumentError as err:
        raise UserError(f"tune.storage={shown!r} is not a storage URL Optuna can open "
                        f"({_first_line(err)}); allowed: {ALLOWED}") from err
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError) as err:
        raise UserError(f"tune.storage={shown!r} cannot be opened as an Optuna storage "
                        f"({_first_line(err)}); allowed: {ALLOWED}") from err


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return redact_text(text[0] if text else type(err).__name__, secrets=[])


def _journal(path: str) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend

    if Path(path).is_dir():
        raise IsADirectoryError(f"{path} is a folder")
    return optuna.storages.JournalStorage(JournalFileBackend(path))


def _check_sqlite_file(url: str, shown: str) -> None:
    """Refuse an existing file that is not an SQLite database, or holds another program's tables."""
    path = sqlite_file(url)
    if path is None or not path.exists() or is_empty(url):
        return
    allowed = "an Optuna storage, a new file, or a new hydra.sweep.dir"
    if not path.is_file():
        raise UserError(f"tune.storage={shown!r}: {path} is not a file; allowed: {allowed}")
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise UserError(f"tune.storage={shown!r}: {path} is not an SQLite database (damaged, or "
                        f"another kind of file); allowed: {allowed}")
    try:  # read-only: a refused file stays as it was
        with sqlite3.connect(f"file:{pathname2url(str(path.absolute()))}?mode=ro", uri=True) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as err:
        raise UserError(f"tune.storage={shown!r}: {path} cannot be read as an SQLite database "
                        f"({err}); allowed: {allowed}") from err
    if tables and not OPTUNA_TABLES <= tables:
        raise UserError(f"tune.storage={shown!r}: {path} is an SQLite database but not an Optuna "
                        f"storage (its tables: {', '.join(sorted(tables)[:5])}); allowed: {allowed}")


def _rdb(url: str, heartbeat_seconds: float, shown: str) -> RDBStorage:
    # Workers started together would each create the tables of a new database, and all but
    # one fail ("table ... already exists"): an SQLite file is created under a file lock, and
    # a server database is retried once its tables exist.
    path = sqlite_file(url)
    lock = FileLock(f"{path}.lock") if path is not None else nullcontext()
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with lock, warnings.catch_warnings():
                _check_sqlite_file(url, shown)  # under the lock: another worker may be creating it
                # heartbeats are what let several workers share a study; Optuna still calls
                # the argument experimental (5.1), and says so on every open
                warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=max(1, round(heartbeat_seconds)),
                                  grace_period=max(2, round(3 * heartbeat_seconds)),
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())
        except sqlalchemy.exc.SQLAlchemyError as err:
            if attempt == CREATE_ATTEMPTS - 1 or not _created_by_another(err):
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def _created_by_another(err: sqlalchemy.exc.SQLAlchemyError) -> bool:
    """A race with another worker creating the same tables, worth another attempt."""
    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.DBAPIError) and any(
        word in text for word in ("already exists", "duplicate", "unique constraint"))
