"""What a run reads back is checked before it is trusted: checkpoints, saved configs, stored
features. Damage is refused (or recomputed) with one line, never trained on."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ftbench.run.checkpoints import CONFIG_DIGEST, CONTENT_DIGEST, content_digest
from ftbench.run.failures import UserError
from tests.helpers import FAST, contents, make_cfg
from tests.helpers import fit_schedule as _fit


def flip_low_bit(checkpoint: Path) -> None:
    """Flip the lowest bit of one float in the largest tensor of a ``torch.save`` file, in
    place: the damage a bad disk or a copy does, which the zip container does not catch."""
    with zipfile.ZipFile(checkpoint) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(checkpoint.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    start = entry.header_offset + 30 + name_len + extra_len
    data[start + entry.file_size // 8 * 4] ^= 1  # the low byte of a float32 (little-endian)
    checkpoint.write_bytes(bytes(data))


def test_a_checkpoint_with_a_flipped_bit_is_refused_and_changes_nothing(interrupted, cli):
    flip_low_bit(interrupted / "last.ckpt")
    before = contents(interrupted)
    with pytest.raises(UserError, match="the checkpoint is damaged"):
        _fit(interrupted, "strategy=gradual", ckpt_path=interrupted / "last.ckpt")
    code, stderr = cli(f"resume={interrupted}")
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert line.startswith("ftbench: error: resume=") and "the checkpoint is damaged" in line
    assert contents(interrupted) == before


def test_a_checkpoint_whose_optimizer_state_was_changed_is_refused(interrupted):
    path = interrupted / "last.ckpt"
    saved = torch.load(path, weights_only=True)
    saved["optimizer_states"][0]["state"] = {}  # well-formed, but not what was written
    torch.save(saved, path)
    with pytest.raises(UserError, match="the checkpoint is damaged"):
        _fit(interrupted, "strategy=gradual", ckpt_path=path)


@pytest.mark.parametrize("entry, message", [(CONTENT_DIGEST, "has no content digest"),
                                            (CONFIG_DIGEST, "was trained with another config")])
def test_a_checkpoint_without_its_digests_is_refused(interrupted, entry, message):
    path = interrupted / "last.ckpt"
    saved = torch.load(path, weights_only=True)
    del saved[entry]
    if entry != CONTENT_DIGEST:  # the content digest covers every other entry: written anew
        saved[CONTENT_DIGEST] = content_digest({k: v for k, v in saved.items() if k != CONTENT_DIGEST})
    torch.save(saved, path)
    with pytest.raises(UserError, match=message):
        _fit(interrupted, "strategy=gradual", ckpt_path=path)


def test_a_resume_from_a_saved_config_edited_since_is_refused(interrupted, cli):
    config = interrupted / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("name: gradual", "name: full"))
    before = contents(interrupted)
    code, stderr = cli(f"resume={interrupted}")
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert "was trained with another config than the run's .hydra/config.yaml" in line
    assert contents(interrupted) == before


@pytest.mark.parametrize("damage", ["labels zeroed", "labels zeroed, digest rewritten", "features changed",
                                    "truncated"])
@pytest.mark.slow  # over a few seconds: make test runs it, make test-fast leaves it out
def test_a_damaged_feature_store_file_is_recomputed_with_a_warning(run_fit, tmp_path, caplog, damage):
    from torch.utils.data import TensorDataset

    from ftbench.finetune.feature_store import DiskFeatureStore

    store = tmp_path / "store"
    first, _ = run_fit("strategy=linear_probe", f"data.feature_store={store}")
    for path in store.glob("*.safetensors"):
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:200])
            continue
        tensors = load_file(str(path))
        if damage == "features changed":
            save_file({"features": tensors["features"] * 1.5, "labels": tensors["labels"]}, str(path))
            continue  # a well-formed file whose labels say every image is class 0
        zeroed = {"features": tensors["features"], "labels": torch.zeros_like(tensors["labels"])}
        if damage == "labels zeroed":
            save_file(zeroed, str(path))
        else:  # consistent with its own digest: only the data set's labels tell
            DiskFeatureStore(store).save(path.stem, TensorDataset(*zeroed.values()))
    second, _ = run_fit("strategy=linear_probe", f"data.feature_store={store}")
    assert second["metrics"] == first["metrics"]
    assert second["cost"]["feature_cache"]["images_loaded"] == 0
    computed = first["cost"]["feature_cache"]["images_computed"]
    assert second["cost"]["feature_cache"]["images_computed"] == computed
    assert "is damaged or does not match its data" in caplog.text
    third, _ = run_fit("strategy=linear_probe", f"data.feature_store={store}")  # repaired
    assert third["cost"]["feature_cache"]["images_loaded"] == computed


def test_feature_store_keys_change_with_the_labels():
    from ftbench.finetune.features import features_key
    from ftbench.models.backbone import create_backbone

    model = create_backbone("test_resnet", num_classes=3, weights="none")
    x, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    key = features_key(model, x, labels=labels)
    assert key == features_key(model, x, labels=labels.clone())
    assert key != features_key(model, x, labels=torch.tensor([0, 1, 2, 1]))


def test_a_config_digest_does_not_depend_on_the_resume_setting():
    from ftbench.run.resume import config_digest

    assert config_digest(make_cfg(*FAST)) == config_digest(make_cfg(*FAST, "resume=somewhere"))
    assert config_digest(make_cfg(*FAST)) != config_digest(make_cfg(*FAST, "strategy=full"))
