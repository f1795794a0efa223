"""A storage the tuned comparison cannot open is one line before anything is written, and the
password of a storage URL is masked like every other secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ftbench.run.redaction import redact_saved_configs, redact_text
from ftbench.run.secret_overrides import job_dirname, override_secrets

TINY = ["model.name=test_resnet", "model.weights=none", "dataset.image_size=32", "trainer.max_epochs=1",
        "tune.strategies=[linear_probe]", "tune.trials=2", "tune.seeds=1"]
PASSWORD = "pw-secret-9"


@pytest.mark.parametrize("url, message", [
    (f"postgresql://u:{PASSWORD}@127.0.0.1:1/db", "needs a database driver that is not installed"),
    ("http://example.invalid/x", "is not a storage URL Optuna can open"),
    ("sqlite:////etc/passwd", "/etc/passwd is not an SQLite database"),
    ("journal:/proc/nonexist/x.log", "cannot be opened as an Optuna storage"),
])
def test_a_storage_that_cannot_be_opened_is_one_line_and_leaves_nothing(tmp_path, cli, url, message):
    sweep = tmp_path / "tuned"
    passwd = Path("/etc/passwd").read_bytes()
    code, stderr = cli("-m", "experiment=tuned", f"hydra.sweep.dir={sweep}", *TINY, f"tune.storage={url}")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], stderr
    assert PASSWORD not in stderr + cli.stdout
    assert not sweep.exists()  # no multirun.yaml, no optuna.db, nothing
    assert not Path("/proc/nonexist").exists() and Path("/etc/passwd").read_bytes() == passwd


def test_the_password_of_a_url_is_masked_in_text_overrides_and_folder_names():
    url = f"postgresql+psycopg://user:{PASSWORD}@db.example:5432/ftbench"
    assert redact_text(f"tune.storage={url},seed=1") == \
        "tune.storage=postgresql+psycopg://user:***@db.example:5432/ftbench,seed=1"
    assert redact_text("http://host:8080/a@b sqlite:///x.db") == "http://host:8080/a@b sqlite:///x.db"
    # remembered as a secret: masked also where the URL is cut apart
    assert PASSWORD in override_secrets([f"tune.storage={url}"])
    root = OmegaConf.create({"hydra": {"overrides": {"task": [f"tune.storage={url}", "seed=1"]},
                                       "job": {"config": {"override_dirname": {
                                           "kv_sep": "=", "item_sep": ",", "exclude_keys": []}}}}})
    name = job_dirname(_root_=root)
    assert PASSWORD not in name and "user:***@db.example" in name


def test_a_saved_multirun_yaml_holds_no_storage_password(tmp_path):
    url = f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"
    saved = {"hydra": {"overrides": {"task": [f"tune.storage={url}"]},
                       "job": {"override_dirname": f"tune.storage={url},tune.trials=2"}},
             "tune": {"storage": url}}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(saved))
    redact_saved_configs(tmp_path, "multirun.yaml")
    text = (tmp_path / "multirun.yaml").read_text()
    assert PASSWORD not in text
    assert yaml.safe_load(text)["tune"]["storage"] == "postgresql://u:***@127.0.0.1:1/db"
