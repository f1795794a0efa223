"""Fixtures: fit tiny models in-process, the command line in-process, an interrupted run, and
known 'pretrained' starting points (test_efficientnet's, and one per tiny model family)."""

from __future__ import annotations

import os
import sys

import pytest

# ftbench, torch and Lightning are imported inside the fixtures: pytest-xdist's controller loads
# this file too, and it runs no test (their import takes it 6 s before any worker starts)


def pytest_configure(config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n auto``) the workers share the machine's cores:
    each gets its share of threads, as ``FTBENCH_WORKERS`` gives the copies of a command, and the
    commands tests start inherit it. Two processes at every core each slow down many times over.
    Tests of the thread share itself set or clear these variables for themselves."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch
        from threadpoolctl import threadpool_limits

        from ftbench.run.threads import available_cores

        threads = max(1, available_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
        # numpy's BLAS read the variable when it loaded, before this: its threads spun against the
        # other workers (the bootstrap simulations ran 4x slower than alone)
        threadpool_limits(threads, user_api="blas")


@pytest.fixture
def run_fit(tmp_path):
    """Fit with the given overrides in ``tmp_path``; returns (result, run_dir)."""

    from ftbench.train import fit
    from tests.helpers import FAST, make_cfg

    def _run(*overrides: str, fast: bool = True):
        cfg = make_cfg(*(FAST if fast else []), *overrides, run_dir=tmp_path)
        return fit(cfg, tmp_path), tmp_path

    return _run


@pytest.fixture
def pretrained(tmp_path_factory):
    """A 'pretrained' test_efficientnet saved to a file, so a run starts from known weights.

    Returns the file and the model's layer groups.
    """
    import torch
    from safetensors.torch import save_file

    from ftbench.models.backbone import create_backbone, layer_groups

    torch.manual_seed(123)
    model = create_backbone("test_efficientnet", num_classes=10, weights="none")
    path = tmp_path_factory.mktemp("weights") / "pretrained.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path, layer_groups(model)


@pytest.fixture(scope="session")
def pretrained_per_model(tmp_path_factory):
    """Per tiny model name (``TINY_MODELS``): a 'pretrained' weight file (so that every run
    starts from known weights), the model's layer groups, and the state-dict keys each group
    owns."""
    import torch
    from safetensors.torch import save_file

    from ftbench.finetune.module import keeps_statistics
    from ftbench.models.backbone import create_backbone, layer_groups

    cache = {}

    def _start(name: str):
        if name not in cache:
            torch.manual_seed(7)
            model = create_backbone(name, num_classes=10, weights="none")
            with torch.no_grad():  # statistics as a trained net has them, and no residual branch
                for m in model.modules():  # zeroed by timm's init (its gradients would be zero)
                    if keeps_statistics(m):
                        m.weight.uniform_(0.5, 1.5)
                        m.running_mean.normal_(0, 0.1)
                        m.running_var.uniform_(0.5, 1.5)
            path = tmp_path_factory.mktemp(name) / "start.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
            groups = layer_groups(model)
            owner = {n.rsplit(".", 1)[0]: g.name for g in groups for n in g.param_names}
            keys = {k: owner[k.rsplit(".", 1)[0]] for k in model.state_dict()}  # buffers included
            cache[name] = path, groups, keys
        return cache[name]

    return _start


@pytest.fixture
def cli(monkeypatch, capsys):
    """``python -m ftbench.train ARGS`` in this process: returns (exit code, stderr); the
    run's stdout is kept as ``cli.stdout``."""
    from ftbench.train import main

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # restored after the test

    def _run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["ftbench.train", *args])
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out = capsys.readouterr()
        _run.stdout = out.out
        return code, out.err

    return _run


@pytest.fixture
def interrupted(tmp_path):
    """A gradual run that crashed after its first epoch, with the config Hydra saves for it."""
    from omegaconf import OmegaConf

    from ftbench.train import fit
    from tests.helpers import SCHEDULE, Crash, CrashAtEpoch, make_cfg

    run_dir = tmp_path / "run"
    cfg = make_cfg(*SCHEDULE, "strategy=gradual", run_dir=run_dir)
    with pytest.raises(Crash):
        fit(cfg, run_dir, callbacks=[CrashAtEpoch(1)])
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> dict:
    """One real result.json (gradual, so the history has several LR phases) to vary."""
    from ftbench.train import fit
    from tests.helpers import FAST, make_cfg

    run_dir = tmp_path_factory.mktemp("template")
    cfg = make_cfg(*FAST, "strategy=gradual", "trainer.max_epochs=3", run_dir=run_dir)
    return fit(cfg, run_dir)


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No API key, no netrc, W&B's own files inside the test folder."""
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_SWEEP_ID",
                "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "home" / ".cache" / "wandb"))
