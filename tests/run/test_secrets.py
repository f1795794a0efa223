"""No secret reaches a file a run, a multirun, the report or W&B writes, nor the console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import FAST, make_cfg

MASK = "***"

# a value under a secret key, a quoted one, a list of them, one below a secret key, one under a
# secret key of a dict value, and one read from a short secret environment variable (shorter
# than the 6 characters every secret-named variable is masked at)
SECRETS = {"plain": "hunter2-pass", "quoted": "tok with space 123", "listed": ["key-one-111", "key-two-222"],
           "below": "zz9-db-pass", "in_dict": "dict-key-333", "env": "ab12c"}
OVERRIDES = [f"+foo.password={SECRETS['plain']}", f"+foo.token='{SECRETS['quoted']}'",
             f"+foo.api_keys=[{','.join(SECRETS['listed'])}]", f"+vault.secrets.db={SECRETS['below']}",
             f"+extra={{api_key: {SECRETS['in_dict']}, project: demo}}", "+notes.remote=${oc.env:MY_TOKEN}"]
ENV = {"MY_TOKEN": SECRETS["env"]}


def every_secret() -> list[str]:
    return [SECRETS["plain"], SECRETS["quoted"], *SECRETS["listed"], SECRETS["below"], SECRETS["in_dict"],
            SECRETS["env"]]


def leaks(root: Path, *console: str) -> list[str]:
    """Where any secret appears: file contents (bytes, binary files included), file and
    folder names, console text."""
    found = []
    for secret in every_secret():
        for path in root.rglob("*"):
            if secret in str(path.relative_to(root)):
                found.append(f"{secret!r} in the name {path}")
            elif path.is_file() and secret.encode() in path.read_bytes():
                found.append(f"{secret!r} in {path}")
        found += [f"{secret!r} on the console" for text in console if secret in text]
    return found


def test_quoted_listed_and_short_env_secrets_reach_no_file_of_a_run(tmp_path, cli, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code, stderr = cli(f"hydra.run.dir={tmp_path}", *FAST, "trainer.max_epochs=1", *OVERRIDES)
    console = cli.stdout + stderr
    assert code == 0, console[-2000:]
    assert {"overrides.yaml", "hydra.yaml", "result.json", "hparams.yaml", "last.ckpt"} <= \
        {p.name for p in tmp_path.rglob("*")}
    assert leaks(tmp_path, console) == []
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["config"]["foo"] == {"password": MASK, "token": MASK, "api_keys": MASK}
    assert result["config"]["vault"] == {"secrets": MASK}
    assert result["config"]["extra"] == {"api_key": MASK, "project": "demo"}
    assert result["config"]["notes"]["remote"] == MASK  # masked by where it came from


@pytest.mark.slow
def test_no_secret_reaches_any_file_of_a_multirun_with_wandb_nor_the_console(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, **ENV, "WANDB_MODE": "offline", "HOME": str(tmp_path / "home"),
           "WANDB_CONFIG_DIR": str(tmp_path / "home" / "wandb")}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "ftbench.train", "-m", f"hydra.sweep.dir={sweep}",
                           "strategy=linear_probe", "seed=0,1", "logger=wandb", "logger.mode=offline",
                           *FAST, "trainer.max_epochs=1", *OVERRIDES],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # what the multirun wrote: two jobs, each with its W&B run, the sweep's config and report
    assert len(list(sweep.glob("*/result.json"))) == 2
    assert len(list(sweep.glob("*/wandb/offline-run-*/run-*.wandb"))) == 2
    assert {"multirun.yaml", "report.md", "last.ckpt", "output.log", "debug.log"} <= \
        {p.name for p in sweep.rglob("*")}
    assert "#1 : " in proc.stdout + proc.stderr  # the launcher's lines, with the overrides
    assert leaks(sweep, proc.stdout, proc.stderr) == []


def test_job_folder_names_leave_out_secret_overrides_and_stay_short():
    from ftbench.run.secret_overrides import job_dirname

    root = OmegaConf.create({"hydra": {
        "overrides": {"task": ["seed=1", "+foo.password=hunter2-pass", "+db.api_key=[a1b2,c3d4]",
                               "+secrets.db=zz9zz9", "dataset.root=/data/x", "resume=r"]},
        "job": {"config": {"override_dirname": {"kv_sep": "=", "item_sep": ",",
                                                 "exclude_keys": ["resume"]}}}}})
    assert job_dirname(_root_=root) == "dataset.root=_data_x,seed=1"
    root.hydra.overrides.task = [f"model.name=m{i:03d}x" + "y" * 40 for i in range(20)]
    name = job_dirname(_root_=root)
    assert len(name.encode()) <= 200 and name.startswith("model.name=m000x")
    root.hydra.overrides.task[-1] += "z"  # another job: another name, however long
    assert job_dirname(_root_=root) != name


def test_a_saved_config_with_its_secrets_masked_has_the_digest_of_the_run():
    from ftbench.run.redaction import redact
    from ftbench.run.resume import config_digest

    cfg = make_cfg(*FAST, "+foo.password=hunter2-pass")
    saved = OmegaConf.create(redact(OmegaConf.to_container(cfg, resolve=False)))
    assert saved.foo.password == MASK
    assert config_digest(saved) == config_digest(cfg)


def test_a_saved_yaml_file_that_does_not_parse_is_withheld_with_a_warning(tmp_path, caplog):
    import logging

    import yaml

    from ftbench.run.redaction import WITHHELD, redact_saved_configs

    broken = tmp_path / "overrides.yaml"
    broken.write_text("- seed=1\n  api_key: hunter2-pass\n b: [")
    config = tmp_path / "config.yaml"
    config.write_text("foo:\n  password: hunter2-pass\n")
    caplog.set_level(logging.WARNING, logger="ftbench")
    redact_saved_configs(tmp_path)
    assert broken.read_text() == f"{WITHHELD}\n" and yaml.safe_load(broken.read_text()) is None
    assert yaml.safe_load(config.read_text()) == {"foo": {"password": MASK}}
    (warning,) = caplog.records
    assert warning.levelname == "WARNING" and str(broken) in warning.getMessage()
    assert "does not parse as YAML (mapping values are not allowed here at line 2" in warning.getMessage()
    assert "hunter2" not in caplog.text


def test_overrides_are_read_by_hydras_parser_for_secrets_in_dicts_and_quoted_sweeps():
    from ftbench.run.secret_overrides import job_dirname, override_secrets, redact_overrides

    nested = ["+logger.extra={api_key: dict-secret-1, project: demo}", "+cb=[{token: 'list secret 2'}]"]
    swept = "+foo.token='tok aa1','tok bb2'"
    found = override_secrets([*nested, swept])
    assert {"dict-secret-1", "list secret 2", "tok aa1", "tok bb2"} <= set(found)
    assert "demo" not in found  # what a dict holds under an ordinary key stays a value
    assert redact_overrides([*nested, swept, "seed=1", "-m", "~foo.password"]) == \
        ["+logger.extra=***", "+cb=***", "+foo.token=***", "seed=1", "-m", "~foo.password"]
    root = OmegaConf.create({"hydra": {
        "overrides": {"task": [*nested, "seed=1"]},
        "job": {"config": {"override_dirname": {"kv_sep": "=", "item_sep": ",", "exclude_keys": []}}}}})
    assert job_dirname(_root_=root) == "seed=1"
    # what Hydra cannot parse is read by its text: Hydra's error quotes it, masked
    assert redact_overrides(["+foo.password=a'b"]) == ["+foo.password=***"]
    assert "a'b" in override_secrets(["+foo.password=a'b"])
