"""Experiment tracking: the configured Lightning logger, per-group LRs, and the final summary.

W&B runs online when credentials exist and offline otherwise, so a laptop without an
account, a cluster node without network, and a CI job all finish the same way and leave a
run folder that ``wandb sync`` can upload later. An online start that cannot reach its
server gives up after ``init_timeout`` seconds and falls back to offline instead of hanging.
"""

from __future__ import annotations

import csv
import logging
import netrc
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlparse

import hydra
from lightning import Trainer
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from ftbench.run.failures import UserError
from ftbench.run.redaction import redact, redact_config
from ftbench.run.secret_overrides import redacted_argv
from ftbench.tracking.flat import flatten

log = logging.getLogger("ftbench")

Mode = Literal["online", "offline", "disabled"]
WANDB_MODES = ("auto", *get_args(Mode))

DEFAULT_WANDB_HOST = "https://api.wandb.ai"


def build_logger(cfg: DictConfig, resume_step: int | None = None, sweep_dir: Path | None = None
                 ) -> Logger | bool:
    """The logger ``cfg.logger`` names, holding the resolved config (secrets redacted).

    ``resume_step``: the global step of the checkpoint a resumed run continues from.
    ``sweep_dir``: the folder of the multirun the run is a job of (``wandb_logger`` takes it).
    """
    if not cfg.get("logger"):
        return False
    target = cfg.logger.get("_target_")
    factory = hydra.utils.get_object(target) if isinstance(target, str) else None
    extra = {"sweep_dir": None if sweep_dir is None else str(sweep_dir)} if factory is wandb_logger else {}
    logger: Logger = hydra.utils.instantiate(cfg.logger, **extra)
    if resume_step is not None and isinstance(logger, RunCSVLogger):
        logger.continue_from(resume_step)
    config = redact_config(cfg)
    logger.log_hyperparams(wandb_config(config) if isinstance(logger, WandbLogger) else config)
    return logger


def wandb_config(config: dict) -> dict:
    """The config as W&B's panels compare it: flat dotted keys with typed values
    (``strategy: gradual``, ``strategy.lr_decay: 2.6``), without the logger's own settings."""
    return flatten({k: v for k, v in config.items() if k != "logger"})


class RunCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``, whose ``metrics.csv`` a resumed run continues.

    Lightning's writer deletes an existing ``metrics.csv``. A resumed run keeps the rows of
    the steps before its checkpoint and logs every later step itself, so the file reads as
    one run (rows an interrupted run logged after its last checkpoint are dropped).
    """

    @rank_zero_only
    def continue_from(self, step: int) -> None:
        """Keep the logged rows of steps before ``step``; call before anything is logged."""
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        fields, rows = [], []
        if path.is_file():
            try:
                with open(path, newline="") as f:
                    reader = csv.DictReader(f)
                    fields = list(reader.fieldnames or [])
                    rows = [row for row in reader if row.get("step") and int(row["step"]) < step]
            except (ValueError, csv.Error) as err:  # ValueError: a step that is no integer
                raise UserError(f"resume: {str(path)!r} is not a readable metrics log ({err}); "
                                "allowed: an intact file, or none (remove it to log afresh)") from err
        with warnings.catch_warnings():  # its warning that it deletes the old file: we keep it
            warnings.filterwarnings("ignore", ".*Previous log files in this directory.*")
            writer = self.experiment
        if rows:
            with open(path, "w", newline="") as f:
                out = csv.DictWriter(f, fieldnames=fields)
                out.writeheader()
                out.writerows(rows)
            writer.metrics_keys = fields  # later rows append under this header, or extend it


def has_wandb_credentials() -> bool:
    """An API key in the environment, an identity token file, or a netrc entry for the host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_WANDB_HOST)).hostname
    path = Path(os.environ.get("NETRC", "~/.netrc")).expanduser()
    try:
        return host is not None and path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> Mode:
    """``auto`` follows ``WANDB_MODE`` if set, else online with credentials and offline without.
    (Any other value than a mode and ``auto`` was refused by ``validate_config``.)"""
    if mode == "auto":
        env_mode = os.environ.get("WANDB_MODE", "")
        mode = {"dryrun": "offline", "run": "online"}.get(env_mode, env_mode)
    known: Mode | None = next((m for m in get_args(Mode) if m == mode), None)
    return known or ("online" if has_wandb_credentials() else "offline")


def default_group(sweep_dir: str | Path | None = None) -> str | None:
    """Runs of one W&B sweep or one Hydra multirun (``sweep_dir``) share a group, so they
    compare at a glance."""
    if os.environ.get("WANDB_SWEEP_ID"):
        return f"sweep-{os.environ['WANDB_SWEEP_ID']}"
    if sweep_dir is not None:
        return sweep_group(sweep_dir)
    return None


def sweep_group(sweep_dir: str | Path) -> str:
    """The W&B group of a Hydra multirun: its sweep folder, cut to W&B's 128 characters."""
    return str(sweep_dir)[-128:]


def start_wandb_run(mode: Mode, init_timeout: float, sync_hint: bool = True, **init: Any) -> Any:
    """``wandb.init`` in ``mode``; an online start that fails or times out continues offline.

    An offline run prints the ``wandb sync`` command that uploads it, once (W&B's own
    closing lines, which repeat it, are kept quiet); ``sync_hint=False`` leaves that to the
    caller, e.g. a multirun that names all its runs at the end.
    """
    import wandb

    settings = wandb.Settings(init_timeout=init_timeout, reinit="finish_previous", quiet=True)
    if mode == "online" and not has_wandb_credentials():
        print("ftbench: logger.mode=online, but no W&B API key is configured (set WANDB_API_KEY "
              "or run `wandb login`); logging offline", file=sys.stderr)
        mode = "offline"
    if mode == "online":
        try:
            with redacted_argv():  # W&B records the command line
                return wandb.init(mode="online", settings=settings, **init)
        except (wandb.errors.Error, TimeoutError) as err:
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            print(f"ftbench: W&B server unreachable ({first_line}); logging offline",
                  file=sys.stderr)
            mode = "offline"
    with redacted_argv():
        run = wandb.init(mode=mode, settings=settings, **init)
    if mode == "offline" and sync_hint:
        print(f"ftbench: W&B is offline; upload this run later with: wandb sync {Path(run.dir).parent}",
              file=sys.stderr)
    return run


def wandb_logger(project: str, save_dir: str, entity: str | None = None, group: str | None = None,
                 tags: list[str] | None = None, name: str | None = None, job_type: str | None = None,
                 mode: str = "auto", init_timeout: float = 30.0, sweep_dir: str | None = None
                 ) -> WandbLogger:
    """A ``WandbLogger`` whose run lives in ``save_dir/wandb`` (the Hydra run dir); ``sweep_dir``:
    the folder of the multirun the run is a job of (``build_logger`` gives it)."""
    init = {"project": project, "entity": entity, "group": group or default_group(sweep_dir),
            "tags": list(tags or []), "name": name, "job_type": job_type, "dir": save_dir}
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # Only rank zero talks to W&B; other ranks get Lightning's no-op experiment. The jobs of
    # a multirun leave the `wandb sync` command to its end, where one line names them all.
    run = (start_wandb_run(resolve_mode(mode), init_timeout, sync_hint=sweep_dir is None, **init)
           if getattr(rank_zero_only, "rank", 0) == 0 else None)
    return WandbLogger(experiment=run, save_dir=save_dir, project=project)


def publish_result(trainer: Trainer, result: dict) -> None:
    """Put the cost figures and the whole result in each W&B run's summary, then close it."""
    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger) or not trainer.is_global_zero:
            continue
        run = logger.experiment
        run.summary.update({"cost": result["cost"], "metrics": result["metrics"],
                            "result": redact(result)})
        run.finish()


def log_summary_run(root: Path, settings: dict, group: str, name: str, tags: list[str], config: dict,
                    tables: dict[str, list[dict]], plots: dict[str, Path]) -> Path:
    """One summary run in a group's dashboard (``settings``: a job's ``logger`` config): each
    non-empty list of records in ``tables`` as a W&B table (its columns the first record's keys)
    and every plot (title -> PNG) as an image; the run is finished and its folder returned."""
    import wandb

    run = start_wandb_run(
        resolve_mode(settings.get("mode") or "auto"), float(settings.get("init_timeout") or 30),
        sync_hint=False, project=settings.get("project") or "ftbench", entity=settings.get("entity"),
        group=settings.get("group") or group, job_type="summary", name=name, tags=tags, dir=str(root),
        config=config)
    logged: dict[str, object] = {
        key: wandb.Table(columns=list(records[0]), data=[list(record.values()) for record in records])
        for key, records in tables.items() if records}
    for title, path in plots.items():
        logged[f"plots/{path.stem}"] = wandb.Image(str(path), caption=title)
    run.log(logged)
    folder = Path(run.dir).parent
    run.finish()
    return folder


def sync_command(root: Path) -> str | None:
    """One ``wandb sync`` command for every offline W&B run under ``root``, or None."""
    found = sorted(p for p in root.rglob("offline-run-*") if p.is_dir())
    if not found:
        return None
    depths = {len(path.relative_to(root).parts) for path in found}
    # the jobs' runs sit at <job>/wandb/offline-run-*, the summary's at wandb/offline-run-*
    if depths <= {2, 3}:
        patterns = [f"{shlex.quote(str(root))}/{'*/' * (depth - 2)}wandb/offline-run-*"
                    for depth in sorted(depths, reverse=True)]
        return "wandb sync " + " ".join(patterns)
    return "wandb sync " + " ".join(shlex.quote(str(path)) for path in found)
