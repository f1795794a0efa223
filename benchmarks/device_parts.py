"""The parts of the device check (``benchmarks/device_check.py``), one process each.

    python -m benchmarks.device_parts PART --result FILE [--dry-run] [--work DIR]

Each part measures one thing ftbench had never run on a GPU, writes a JSON object to FILE
(its figures, the checks it made, a markdown summary) and exits 0. On the device it uses
the sizes the issue names; with ``--dry-run`` the same code runs on the CPU with tiny timm
``test_*`` models and few batches, so that the test suite keeps every part working.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

from benchmarks.common import machine, make_cfg, meets, quiet, timed
from ftbench.finetune.strategies import registered
from ftbench.run.result import RESULT_FILE, Result, read_result

TARGET_OVERHEAD = 0.95
# a few batches of a tiny model: what the dry run trains everywhere a device run trains more
TINY = ["model.name=test_efficientnet", "model.weights=none"]
FEW_BATCHES = ["+trainer.limit_train_batches=3", "+trainer.limit_val_batches=1",
               "+trainer.limit_test_batches=1"]


def trainer(dry: bool) -> list[str]:
    return ["trainer=cpu"] if dry else ["trainer=gpu"]


def table(header: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def results_under(root: Path) -> list[Result]:
    return [read_result(p.parent) for p in sorted(root.rglob(RESULT_FILE))]


def tail(text: str, lines: int = 3) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def train_cli(*args: str):
    """``python -m ftbench.train ARGS``; the end of its output goes to this part's log."""
    proc = subprocess.run([sys.executable, "-m", "ftbench.train", *args], capture_output=True, text=True,
                          timeout=600)
    output = tail(proc.stdout + proc.stderr, 20)
    print(f"$ ftbench.train {' '.join(args)}\n-> exit {proc.returncode}\n{output}", flush=True)
    return proc


# -- (1) ftbench against a plain PyTorch bf16 loop ---------------------------------------------
def overhead(dry: bool, work: Path) -> dict:
    from benchmarks.overhead import ftbench_images_per_second, plain_images_per_second

    if dry:
        overrides, epochs, pairs = ["model.name=test_resnet", "model.weights=none"], 1, 1
    else:
        overrides, epochs, pairs = ["model=resnet50", "model.weights=none", "dataset.image_size=224",
                                    "trainer=gpu"], 3, 2
        ftbench_images_per_second(overrides, 1)  # warm-up: CUDA context, cuDNN autotuning
        plain_images_per_second(overrides, 1)
    sides = [("plain", plain_images_per_second), ("ftbench", ftbench_images_per_second)]
    measured = []
    for i in range(pairs):  # back to back, in alternating order: drift falls on both sides
        pair = {name: measure(overrides, epochs) for name, measure in (sides if i % 2 == 0 else sides[::-1])}
        measured.append({**pair, "ratio": pair["ftbench"] / pair["plain"]})
    ratio = median(p["ratio"] for p in measured)
    met = meets(ratio, TARGET_OVERHEAD)
    return {"overrides": overrides, "epochs": epochs, "pairs": measured, "ratio": ratio,
            "target": TARGET_OVERHEAD, "met": met,
            "markdown": table(["pair", "plain img/s", "ftbench img/s", "ratio"],
                              [[i + 1, p["plain"], p["ftbench"], p["ratio"]] for i, p in enumerate(measured)])
            + f"\n\nMedian ratio {ratio:.3f} (target >= {TARGET_OVERHEAD}: "
              f"{'met' if met else 'NOT met'}); `{' '.join(overrides)}`, "
              f"epochs per side: {epochs}."}


# -- (2) every strategy end to end, and one diverging run --------------------------------------
def strategies(dry: bool, work: Path) -> dict:
    sizes = [*TINY, *FEW_BATCHES] if dry else []
    common = [*trainer(dry), *sizes, "trainer.max_epochs=2", "trainer.enable_progress_bar=false"]
    sweep, names = work / "strategies", list(registered())
    proc = train_cli("-m", f"strategy={','.join(names)}", *common, f"hydra.sweep.dir={sweep}")
    runs = {r.strategy: r for r in results_under(sweep)}
    rows = []
    for name in names:
        run = runs.get(name)
        if run is None:
            rows.append({"strategy": name, "status": "no result.json"})
            continue
        cost = run.cost
        rows.append({"strategy": name, "status": run.status,
                     "precision": run.config_at("trainer", "precision"),
                     "test_acc": run.metrics.test_acc, "train_seconds": cost.train_seconds,
                     "images_per_second": cost.images_per_second, "train_memory_mb": cost.train_memory_mb,
                     "peak_memory_mb": cost.peak_memory_mb, "train_flops": cost.train_flops,
                     "feature_cache": cost.feature_cache.used if cost.feature_cache else None,
                     "error": run.error})
    # the finite-loss guard: on an accelerator it reads a device flag, not every step's loss
    diverge_dir = work / "diverge"
    diverging = train_cli("strategy.lr=1e30", *common, f"hydra.run.dir={diverge_dir}")
    record = read_result(diverge_dir) if (diverge_dir / RESULT_FILE).exists() else None
    diverged = {"returncode": diverging.returncode, "status": record.status if record else None,
                "error": (record.error if record else None) or tail(diverging.stderr)}
    checks = {"every strategy completed": all(r["status"] == "completed" for r in rows),
              "the sweep wrote its report": (sweep / "report.md").is_file(),
              "the diverging run ended diverged (exit 3, recorded)":
                  diverging.returncode == 3 and record is not None and record.status == "diverged"}
    header = ["strategy", "status", "precision", "test acc", "train s", "img/s", "train MB", "peak MB",
              "cached"]
    keys = ["strategy", "status", "precision", "test_acc", "train_seconds", "images_per_second",
            "train_memory_mb", "peak_memory_mb", "feature_cache"]
    return {"sweep_returncode": proc.returncode, "sweep_stderr": tail(proc.stderr) if proc.returncode else "",
            "runs": rows, "diverging_run": diverged, "checks": checks,
            "markdown": table(header, [[r[k] for k in keys] for r in rows])
            + f"\n\nDiverging run (`strategy.lr=1e30`): exit {diverged['returncode']}, status "
              f"`{diverged['status']}`: {diverged['error']}"}


# -- (3) the feature cache at 224 px -----------------------------------------------------------
def feature_cache(dry: bool, work: Path) -> dict:
    from benchmarks.feature_cache import run as fit_timed

    overrides = [*trainer(dry), *(TINY if dry else ["dataset.image_size=224"])]
    epochs = 1 if dry else 5
    store = work / "feature_store"
    fit_timed(1, "stored", store, overrides)  # warm-up, which fills the store as a sweep's first run
    modes = {}
    for mode in ("uncached", "cached", "stored"):
        seconds, result = fit_timed(epochs, mode, store, overrides)
        modes[mode] = {"seconds": seconds, "test_acc": result.metrics.test_acc,
                       "train_seconds": result.cost.train_seconds,
                       "cache_used": result.cost.feature_cache.used if result.cost.feature_cache else None}
    base = modes["uncached"]["seconds"]
    speedups = {m: base / modes[m]["seconds"] for m in ("cached", "stored")}
    return {"overrides": overrides, "epochs": epochs, "modes": modes, "speedup": speedups,
            "checks": {"same accuracy on every path": len({m["test_acc"] for m in modes.values()}) == 1,
                       "the cached paths used the cache": modes["cached"]["cache_used"]
                       and modes["stored"]["cache_used"] and not modes["uncached"]["cache_used"]},
            "markdown": table(["path", "fit + test s", "train s", "test acc", "speed-up"],
                              [[m, v["seconds"], v["train_seconds"], v["test_acc"],
                                speedups.get(m, 1.0)] for m, v in modes.items()])
            + f"\n\n`linear_probe`, epochs: {epochs}, `{' '.join(overrides)}`."}


# -- (4) torch.compile ---------------------------------------------------------------------------
def compiled(dry: bool, work: Path) -> dict:
    import torch
    from torch._dynamo.utils import counters

    from ftbench.train import fit

    if dry:
        # inductor's C++ build on a CPU takes about 40 s for a test model; on the device it is
        # inductor's GPU path that runs. The dry run traces the same way, compiling nothing.
        inductor = torch.nn.Module.compile
        torch.nn.Module.compile = lambda self, *a, **k: inductor(self, *a, **{"backend": "aot_eager", **k})
        sizes, epochs = ["model.name=test_resnet", "model.weights=none", "+trainer.limit_train_batches=3"], 2
    else:  # full batches only (no recompile for a short last one); no validation to compile
        sizes, epochs = ["model=resnet50", "model.weights=none", "dataset.image_size=224",
                         "+trainer.limit_train_batches=19"], 3
    base = [*trainer(dry), *sizes, "strategy=full", f"trainer.max_epochs={epochs}",
            "+trainer.limit_val_batches=0", "+trainer.limit_test_batches=1"]
    runs = {}
    for flag in ("false", "true"):
        run_dir = work / f"compile_{flag}"
        cfg = make_cfg(*base, f"model.compile={flag}", run_dir=run_dir)
        seconds, _ = timed(lambda cfg=cfg, run_dir=run_dir: fit(cfg, run_dir))
        result = read_result(run_dir)
        first, *later = result.cost.epoch_train_seconds or []  # the first pays for compiling
        per_epoch = (result.cost.train_images or 0) / (1 + len(later))
        runs[flag] = {"fit_seconds": seconds, "first_epoch_seconds": first,
                      "steady_images_per_second": per_epoch * len(later) / sum(later),
                      "test_acc": result.metrics.test_acc}
    ratio = runs["true"]["steady_images_per_second"] / runs["false"]["steady_images_per_second"]
    return {"overrides": base, "runs": runs, "compiled_over_eager": ratio,
            "dynamo": {"graphs": counters["stats"].get("unique_graphs", 0),
                       "graph_breaks": sum(counters["graph_break"].values())},
            "markdown": table(["model.compile", "first epoch s", "steady img/s", "fit + test s"],
                              [[f, r["first_epoch_seconds"], r["steady_images_per_second"], r["fit_seconds"]]
                               for f, r in runs.items()])
            + f"\n\nCompiled / eager, steady images/s: {ratio:.3f}; `{' '.join(base)}`."}


# -- (5) a sweep packed onto one device ----------------------------------------------------------
def sweep(dry: bool, work: Path) -> dict:
    n = 2 if dry else 4  # two CPU cores here: four processes importing torch at once take minutes
    jobs = ["-m", "strategy=full", f"seed={','.join(map(str, range(n)))}", "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false", *trainer(dry), *([*TINY, *FEW_BATCHES] if dry else [])]
    ways = {"packed": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n}"], "one_at_a_time": []}
    measured = {}
    for way, launcher in ways.items():  # packed first: a warm start would favour the baseline
        start = time.perf_counter()
        proc = train_cli(*jobs, *launcher, f"hydra.sweep.dir={work / way}")
        wall = time.perf_counter() - start
        done = [r for r in results_under(work / way) if r.status == "completed"]
        images = sum(r.cost.train_images or 0 for r in done)
        measured[way] = {"returncode": proc.returncode, "jobs_completed": len(done), "wall_seconds": wall,
                         "train_images": images, "images_per_second": images / wall,
                         "sum_of_job_images_per_second": sum(r.cost.images_per_second or 0.0 for r in done)}
    ratio = measured["packed"]["images_per_second"] / measured["one_at_a_time"]["images_per_second"]
    return {"jobs": jobs, "ways": measured, "packed_over_one_at_a_time": ratio,
            "checks": {"every job completed": all(m["jobs_completed"] == n for m in measured.values())},
            "markdown": table(["launcher", "jobs done", "wall s", "images", "images / wall s"],
                              [[w, m["jobs_completed"], m["wall_seconds"], m["train_images"],
                                m["images_per_second"]] for w, m in measured.items()])
            + f"\n\n{n} jobs of `{' '.join(jobs[1:])}`; packed / one at a time: {ratio:.2f}x."}


PARTS: dict[str, Callable[[bool, Path], dict]] = {
    "overhead": overhead, "strategies": strategies, "feature_cache": feature_cache,
    "compile": compiled, "sweep": sweep,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("part", choices=list(PARTS))
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    quiet()
    print(f"{args.part} on {machine()}{' (dry run)' if args.dry_run else ''}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = PARTS[args.part](args.dry_run, args.work or Path(tmp))
    args.result.write_text(json.dumps(result, indent=2, default=str))
    sys.exit(0)


if __name__ == "__main__":
    main()
