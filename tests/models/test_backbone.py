import numpy as np
import pytest
import timm
import torch
from PIL import Image

from ftbench.models.backbone import create_backbone, layer_groups
from ftbench.models.weights import packaged_state_dict, read_state_dict
from ftbench.run.failures import UserError
from tests.helpers import TINY_MODELS as TINY


@pytest.mark.parametrize("name", TINY)
def test_layer_groups_partition_the_model_with_the_classifier_on_top(name):
    model = create_backbone(name, num_classes=7, weights="none")
    groups = layer_groups(model)
    names = [n for g in groups for n in g.param_names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert groups[0].name == "stem" and groups[-1].name == "head"
    head = {id(p) for p in model.get_classifier().parameters()}
    params = dict(model.named_parameters())
    assert {id(params[n]) for n in groups[-1].param_names} == head
    assert len(groups) >= 4  # stem, stages, head


def test_convnext_head_norm_joins_the_last_stage_not_the_new_head():
    groups = layer_groups(create_backbone("test_convnext", num_classes=3, weights="none"))
    assert groups[-1].param_names == ("head.fc.weight", "head.fc.bias")
    assert "head.norm.weight" in groups[-2].param_names


def test_packaged_lite0_weights_map_onto_timm_by_shape():
    model = timm.create_model("tf_efficientnet_lite0")
    state = packaged_state_dict("tf_efficientnet_lite0", model)
    target = model.state_dict()
    assert list(state) == list(target)
    assert all(state[k].shape == target[k].shape for k in state)


def test_packaged_lite0_recognises_the_daisy():
    from sklearn.datasets import load_sample_images

    model = create_backbone("tf_efficientnet_lite0", num_classes=1000, weights="package").eval()
    # the packaged ImageNet head was replaced by a new one; load the full file to check it
    full = timm.create_model("tf_efficientnet_lite0").eval()
    full.load_state_dict(packaged_state_dict("tf_efficientnet_lite0", full))
    for k, v in model.state_dict().items():
        if not k.startswith("classifier"):
            assert torch.equal(v, full.state_dict()[k])
    cfg = timm.data.resolve_data_config({}, model=full)
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5)
    flower = load_sample_images().images[1]
    x = timm.data.create_transform(**cfg)(Image.fromarray(np.asarray(flower))).unsqueeze(0)
    with torch.no_grad():
        assert full(x).argmax().item() == 985  # daisy


def test_weights_from_a_safetensors_file_round_trip(tmp_path):
    from safetensors.torch import save_file

    source = create_backbone("test_resnet", num_classes=5, weights="none")
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "w.safetensors")
    loaded = create_backbone("test_resnet", num_classes=5, weights=str(tmp_path / "w.safetensors"))
    for k, v in source.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_a_file_with_another_head_size_keeps_the_backbone_and_a_new_head(tmp_path):
    source = create_backbone("test_resnet", num_classes=1000, weights="none")
    torch.save(source.state_dict(), tmp_path / "w.pth")
    loaded = create_backbone("test_resnet", num_classes=4, weights=str(tmp_path / "w.pth"))
    assert loaded.get_classifier().out_features == 4
    assert torch.equal(loaded.conv1[0].weight, source.conv1[0].weight)


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {f"module.{k}": v for k, v in sd.items()},  # saved from a DDP-wrapped model
    lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},  # a Lightning checkpoint
    lambda sd: {"model": sd, "epoch": 3},  # a timm training checkpoint
], ids=["bare", "ddp", "lightning", "timm"])
def test_weight_files_in_the_usual_wrappers_load_the_same_tensors(tmp_path, wrap):
    source = create_backbone("test_resnet", num_classes=5, weights="none")
    torch.save(wrap(source.state_dict()), tmp_path / "w.pth")
    loaded = create_backbone("test_resnet", num_classes=5, weights=str(tmp_path / "w.pth"))
    for k, v in source.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_weights_for_another_architecture_are_refused(tmp_path):
    torch.save(create_backbone("test_vit", 3, "none").state_dict(), tmp_path / "vit.pth")
    with pytest.raises(UserError, match="does not fit the model"):
        create_backbone("test_resnet", num_classes=3, weights=str(tmp_path / "vit.pth"))


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"conv1.0.weight": torch.zeros(1), "evil": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="refused"):
        read_state_dict(tmp_path / "evil.pth")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name, weights, message", [
    ("resnet_fifty", "none", "model.name='resnet_fifty' is not a timm model"),
    ("test_resnet", "imagenet", "model.weights='imagenet' is not valid"),
    ("test_resnet", "package", "model.weights=package is not available"),
    ("test_resnet", "/no/such/file.safetensors", "no such file"),
])
def test_bad_model_settings_are_user_errors(name, weights, message):
    with pytest.raises(UserError, match=message):
        create_backbone(name, num_classes=3, weights=weights)


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """A Hugging Face hub that refuses connections and an empty hub cache: offline, as far as
    timm can tell, whether or not this machine has a network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_timm_weights_out_of_reach_fail_at_once_with_one_line(unreachable_hub, caplog):
    # without the reachability check, huggingface_hub retries for about a minute first
    with pytest.raises(UserError, match="pretrained weights for 'test_efficientnet': 127.0.0.1 cannot be "
                                        "reached and they are not in the local cache; when offline use "
                                        "model.weights=package"):
        create_backbone("test_efficientnet", num_classes=3, weights="timm")
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_timm_weights_in_the_local_cache_load_without_the_hub(unreachable_hub):
    from safetensors.torch import save_file

    from ftbench.models.weights import weights_url

    assert weights_url("test_efficientnet") == "http://127.0.0.1:9"  # the hub, not a plain URL
    commit = "0" * 40
    repo = unreachable_hub / "models--timm--test_efficientnet.r160_in1k"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    torch.manual_seed(7)
    cached = timm.create_model("test_efficientnet")
    save_file({k: v.contiguous() for k, v in cached.state_dict().items()},
              repo / "snapshots" / commit / "model.safetensors")
    model = create_backbone("test_efficientnet", num_classes=3, weights="timm")
    assert torch.equal(model.conv_stem.weight, cached.conv_stem.weight)
    assert model.get_classifier().out_features == 3


@pytest.mark.parametrize("raised, expected", [(OSError("connection refused"), UserError),
                                              (TypeError("a bug"), TypeError)])
def test_only_a_failed_fetch_of_timm_weights_is_a_user_error_a_bug_keeps_its_traceback(
        monkeypatch, raised, expected):
    from ftbench.models import weights

    def create_model(*args, **kwargs):
        raise raised

    monkeypatch.setattr(weights, "weights_url", lambda name: None)  # no URL to try: the cache only
    monkeypatch.setattr(timm, "create_model", create_model)
    with pytest.raises(expected) as caught:
        weights.timm_pretrained("test_vit", num_classes=3)
    assert (caught.type is UserError) == (expected is UserError)
