"""The report reads what runs left behind, which anyone who can write into a sweep folder controls:
it evaluates nothing it reads, writes only its own files and never through a link, lists a
record it cannot read with the reason (without hanging), stays linear in the number of
strategies, and escapes names for each format it writes."""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import os
import re
import signal
from pathlib import Path

import pytest

from ftbench.report import write_report
from ftbench.report.collect import collect
from ftbench.run.atomic import write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GROUPS = ["stem", "stage1", "stage2", "head"]


def record(strategy: str = "full", seed: int = 0, acc: float = 0.8, flops: float = 1e9, **parts) -> dict:
    """A completed run's result.json as ``ftbench.run.result.build_result`` shapes it (input for
    the report, not a measurement); ``parts`` replace top-level parts."""
    data = {
        "schema": 1, "status": "completed", "strategy": strategy, "model": "tiny", "dataset": "digits",
        "seed": seed, "groups": [{"name": g, "params": 100} for g in GROUPS],
        "metrics": {"val_acc": acc - 0.01, "test_acc": acc, "test_loss": 1.0, "epochs": 2,
                    "per_class_test_acc": {"a": acc, "b": acc - 0.1, "c": None},
                    "confusion_matrix": [[3, 1, 0], [1, 3, 0], [0, 0, 0]],
                    "shift": {"noise:3": acc - 0.2, "mean": acc - 0.2}},
        "cost": {"train_seconds": 2.0, "train_flops": flops, "train_memory_mb": 4.0, "peak_memory_mb": 90.0,
                 "trainable_params": 1000, "total_params": 2000, "images_per_second": 200.0,
                 "wall_seconds": 8.0, "feature_cache": {"used": True}, "drift": dict.fromkeys(GROUPS, 0.1)},
        "history": [{"epoch": e, "train_loss": 1.0, "val_acc": acc - 0.1 + 0.05 * e,
                     "lrs": [0.0, 0.001 * e, 0.01, 0.01], "trainable_groups": ["head"] if e == 0 else GROUPS}
                    for e in range(2)],
        "data": {"num_classes": 3, "classes": ["a", "b", "c"], "train_size": 100, "augmented": False},
        "config": {"seed": seed, "strategy": {"name": strategy, "lr": 0.01, "lr_decay": 2.0,
                                              "search": {"lr": {"low": 1e-4, "high": 0.1, "log": True}}},
                   "model": {"name": "tiny"}, "dataset": {"name": "digits"}, "optimizer": {"name": "adamw"},
                   "trainer": {"max_epochs": 2}, "run": {"test": True}, "tune": {"phase": None}},
        "predictions": None, "versions": {},
    }
    data.update(parts)
    return data


def sweep(root: Path, records: list[dict]) -> Path:
    for i, data in enumerate(records):
        write_json(root / f"job{i}" / "result.json", data)
    return root


def compared(root: Path) -> Path:
    """Two strategies over two seeds each: every table, note and plot has something to show."""
    return sweep(root, [record("full", 0, 0.80, 4e9), record("full", 1, 0.84, 4e9),
                        record("linear_probe", 0, 0.60, 1e9), record("linear_probe", 1, 0.63, 1e9)])


def tuned_sweep(root: Path, search_lr="${oc.env:PROBE_SECRET_TOKEN}") -> Path:
    """A tuned comparison's folder: two search trials, default and tuned runs on two seeds."""
    def run(phase: str, seed: int, acc: float, job: str, lr) -> dict:
        data = record("full", seed, acc)
        data["config"]["tune"] = {"phase": phase, "job": job, "trials": 2, "sampler_seed": 0,
                                  "search_seed": 0, "pruner": {"startup_trials": 1, "warmup_epochs": 1}}
        data["config"]["strategy"]["lr"] = lr
        return data

    return sweep(root, [run("search", 0, 0.7, "trial0", 0.01), run("search", 0, 0.9, "trial1", search_lr),
                        *(run("default", s, 0.7 + s / 100, f"seed{s}", 0.01) for s in (0, 1)),
                        *(run("tuned", s, 0.8 + s / 100, f"seed{s}", search_lr) for s in (0, 1))])


def written(root: Path) -> str:
    """Every file the report wrote, as text (PNGs as bytes decoded leniently)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(root.rglob("*"))
                     if p.is_file() and p.name != "result.json")


# -- item 8: the report reads data, never evaluates it ----------------------------------------------
def test_an_interpolation_in_a_result_is_shown_as_the_text_it_is_never_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBE_SECRET_TOKEN", "value-of-the-env-var")
    runs = [record("full", s, 0.8 + s / 100) for s in (0, 1)]
    for data in runs:
        data["config"]["optimizer"]["name"] = "${oc.env:PROBE_SECRET_TOKEN}"
    broken = [record("linear_probe", s, 0.6 + s / 100) for s in (0, 1)]
    for data in broken:
        data["config"]["optimizer"]["name"] = "${foo"  # not even a valid interpolation
    plain = sweep(tmp_path / "plain", runs + broken)
    tuned = tuned_sweep(tmp_path / "tuned")

    write_report(plain)
    md, table = (plain / "report.md").read_text(), (plain / "report.csv").read_text()
    assert "| full optimizer=${oc.env:PROBE_SECRET_TOKEN} |" in md
    assert "| linear_probe optimizer=${foo |" in md
    assert "optimizer=${oc.env:PROBE_SECRET_TOKEN}" in table and "optimizer=${foo" in table
    write_report(tuned)
    assert "lr=${oc.env:PROBE_SECRET_TOKEN}" in (tuned / "report.md").read_text()
    for root in (plain, tuned):
        assert "value-of-the-env-var" not in written(root)


# -- item 9: written atomically, never through a link ---------------------------------------------
def _outside(tmp_path: Path) -> dict[Path, bytes]:
    """Files outside the sweep folder that links point at: none may change."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "folder").mkdir(parents=True)
    files = {elsewhere / "table.csv": b"not the report's\n", elsewhere / "text.md": b"mine\n",
             elsewhere / "image.png": b"a picture of mine",
             elsewhere / "folder" / "accuracy_vs_flops.png": b"keep",
             elsewhere / "folder" / "notes.txt": b"mine"}
    for path, content in files.items():
        path.write_bytes(content)
    return files


@pytest.mark.parametrize("kind", ["plain", "tuned"])
@pytest.mark.slow  # over a second or two: make test runs it, make test-fast leaves it out
def test_the_report_replaces_links_where_its_files_go_and_never_writes_through_them(tmp_path, kind, caplog):
    root = compared(tmp_path / "sweep") if kind == "plain" else tuned_sweep(tmp_path / "sweep", 0.02)
    files = _outside(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (root / "report.csv").symlink_to(elsewhere / "table.csv")
    (root / "report.md").symlink_to(elsewhere / "text.md")
    (root / "plots").symlink_to(elsewhere / "folder", target_is_directory=True)

    with caplog.at_level(logging.WARNING, logger="ftbench"):
        paths = write_report(root)

    assert {path: path.read_bytes() for path in files} == files  # every target as it was
    assert sorted(p.name for p in (elsewhere / "folder").iterdir()) == ["accuracy_vs_flops.png", "notes.txt"]
    for name in ("report.csv", "report.md", "plots"):
        assert not (root / name).is_symlink(), name
    assert (root / "plots").is_dir() and "was a link" in caplog.text
    plots = [p for p in paths.values() if p.suffix == ".png"]
    assert plots and all(p.parent == root / "plots" and p.read_bytes().startswith(PNG_MAGIC) for p in plots)

    # a plot linked to a file outside: the link is replaced by the plot, the file left alone
    first = plots[0]
    first.unlink()
    first.symlink_to(elsewhere / "image.png")
    write_report(root)
    assert not first.is_symlink() and first.read_bytes().startswith(PNG_MAGIC)
    assert (elsewhere / "image.png").read_bytes() == files[elsewhere / "image.png"]
    assert not list(root.rglob("*.tmp"))


def test_a_plot_that_fails_while_being_written_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    root = compared(tmp_path)
    plot = write_report(root)["Accuracy against training FLOPs"]
    before = plot.read_bytes()

    def half_then_fail(self, fname, **kwargs):
        Path(fname).write_bytes(before[:10])
        raise ValueError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    write_report(root)  # the plot is left out with a warning; the one on disk stays whole
    assert plot.read_bytes() == before
    assert not list(root.rglob("*.tmp"))


def test_a_plots_entry_that_is_not_a_folder_is_left_alone_and_no_plot_is_drawn(tmp_path):
    root = compared(tmp_path)
    (root / "plots").write_text("mine")
    write_report(root)
    assert (root / "plots").read_text() == "mine"
    assert "plots in this folder is not a folder: no plot was drawn." in (root / "report.md").read_text()


# -- item 10: crafted records are listed as unreadable, never crash or hang the report ----------
@pytest.fixture
def alarm():
    """Fail instead of hanging: a read that blocks is interrupted after a few seconds."""
    def ring(signum, frame):
        raise TimeoutError("the report blocked")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _with(change) -> bytes:
    data = record("full", 2, 0.81)
    change(data)
    return json.dumps(data).encode()


CRAFTED = {
    "not JSON (an integer of 400 digits)": b'{"seed": ' + b"9" * 400 + b"}",
    "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
    "metrics.per_class_test_acc is not an object of numbers":
        _with(lambda d: d["metrics"].update(per_class_test_acc={"a": "high", "b": [1]})),
    "seed is not an integer": _with(lambda d: d.update(seed=[1, 2])),
    "groups holds an entry that is not an object": _with(lambda d: d.update(groups=[1, "stem"])),
    "groups[1].name is not a name": _with(lambda d: d["groups"][1].update(name=["x"])),
    "metrics.shift is not an object of numbers": _with(lambda d: d["metrics"].update(shift=[0.5])),
    "metrics.confusion_matrix is not a square table of counts":
        _with(lambda d: d["metrics"].update(confusion_matrix=[[1, 2], [3]])),
    "cost.drift is not an object of numbers": _with(lambda d: d["cost"].update(drift={"stem": "far"})),
    "data.classes is not a list of names": _with(lambda d: d["data"].update(classes=3)),
    "history[0].epoch is not a count": _with(lambda d: d["history"][0].update(epoch="first")),
    "history[1].lrs is not a list of numbers": _with(lambda d: d["history"][1].update(lrs="0.1")),
    "metrics.test_acc is 1e+200, not a number": _with(lambda d: d["metrics"].update(test_acc=1e200)),
}


@pytest.mark.usefixtures("alarm")
def test_crafted_records_are_listed_as_unreadable_with_their_reason(tmp_path):
    root = compared(tmp_path)
    for i, content in enumerate(CRAFTED.values()):
        (root / f"bad{i}").mkdir()
        (root / f"bad{i}" / "result.json").write_bytes(content)
    (root / "devzero").mkdir()
    (root / "devzero" / "result.json").symlink_to("/dev/zero")
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "result.json")  # nobody writes: an ordinary open would wait for ever

    write_report(root)
    md = (root / "report.md").read_text()
    for i, reason in enumerate(CRAFTED):
        assert re.search(rf"\| unreadable result\.json: {re.escape(reason)} \| bad{i} \|", md), reason
    for name in ("devzero", "fifo"):
        assert f"| unreadable result.json: not a regular file | {name} |" in md
    assert "| 0.8200 [0.5659, 1.0000] (n=2) ‡ † |" in md  # the good runs of full, as without the others
    assert "of which 15 failed" in md


def test_figures_of_the_wrong_type_count_as_absent(tmp_path):
    """Scalars the report averages (costs, figures in the history) that are not numbers, or
    beyond any measurement (two of 1.7e308 overflow a sum), are left out of the means; the run
    still counts."""
    huge = [record("full", s, 0.80 + s / 25, 4e9) for s in (0, 1)]
    for data in huge:
        data["cost"]["peak_memory_mb"] = 1.7e308
    odd = record("full", 2, 0.86)
    odd["cost"].update(train_flops="4e9", train_seconds=[1], train_memory_mb={"x": 1}, trainable_params=True)
    odd["history"][1].update(val_acc=None, train_loss="low")
    odd["data"]["num_classes"] = "3"
    odd["config"]["tune"] = "search"
    root = sweep(tmp_path, [*huge, odd])
    write_report(root)
    rows = list(csv.DictReader(io.StringIO((root / "report.csv").read_text())))
    assert len(rows) == 1 and rows[0]["runs"] == "3" and rows[0]["test_acc_n"] == "3"
    assert float(rows[0]["train_flops"]) == 4e9  # the mean of the two runs that have it
    assert rows[0]["peak_memory_mb"] == "90.0"  # the third run's: 1.7e308 counts as none


def _leaves(value, path=()):
    """Every part of a record by its path (the first two entries of each list)."""
    yield path
    items = (value.items() if isinstance(value, dict) else
             enumerate(value[:2]) if isinstance(value, list) else ())
    for key, part in items:
        yield from _leaves(part, (*path, key))


def _text_report(runs: list) -> None:
    """Every table and note of both kinds of report, as the report builds them (no plots): text
    in which no value read from a record becomes markup or a spreadsheet formula, and the intact
    records are still reported."""
    from ftbench.report import tuned
    from ftbench.report.fmt import num, si
    from ftbench.report.rows import group_rows
    from ftbench.report.sections import marginal_table, per_class_table, probe_text, rows_text
    from ftbench.report.tables import context, csv_text, failed_table, markdown_table, shift_table, unfinished

    rows = group_rows(runs)
    table, table_csv = markdown_table(rows), csv_text(rows)
    items = tuned.tunings(runs)
    texts = [table, shift_table(rows), context(runs), rows_text(rows),
             failed_table([r for r in runs if unfinished(r)]), marginal_table(rows, si, num),
             per_class_table(rows), probe_text(runs, {}),
             tuned.default_against_tuned(items), tuned.sensitivity(items), tuned.spaces(items),
             tuned.protocol(runs, items)]
    for text in texts:
        assert isinstance(text, str) and "<b>" not in text  # "=x|<b>" shown as text, never as HTML
    assert "linear_probe" in table  # the intact records are reported
    cells = [cell for line in csv.reader(io.StringIO(table_csv)) for cell in line]
    assert not any(cell.startswith("=x") for cell in cells)  # no cell a spreadsheet would run


@pytest.mark.slow
def test_no_value_of_the_wrong_type_anywhere_in_a_record_takes_the_report_down():
    """Each part of a record in turn replaced by a value of another type: the record is either
    refused by the reader (listed as unreadable) or reported with the bad value as absent."""
    from ftbench.report.collect import Run
    from ftbench.run.result import problem

    template = record("full", 2, 0.81)
    template["config"]["tune"].update(phase="search", job="trial0", pruner={"warmup_epochs": 1})
    others = [record("full", 0, 0.8), record("full", 1, 0.84), record("linear_probe", 0, 0.6)]
    refused = reported = 0
    for path in list(_leaves(template))[1:]:
        for value in ("=x|<b>", None, [1, "a"], {"a": "b"}, 1e300, -1):
            data = copy.deepcopy(template)
            part = data
            for key in path[:-1]:
                part = part[key]
            part[path[-1]] = value
            if problem(json.loads(json.dumps(data))) is not None:
                refused += 1
                continue
            for tuned_phase in (None, "search"):  # a plain sweep's report, then a tuned sweep's
                runs = [Run(copy.deepcopy(d)) for d in others] + [Run(copy.deepcopy(data))]
                for run in runs:
                    if isinstance((run.data.get("config") or {}).get("tune"), dict):
                        run.data["config"]["tune"]["phase"] = tuned_phase
                _text_report(runs)
            reported += 1
    assert refused and reported > 300


@pytest.mark.usefixtures("alarm")
def test_a_saved_config_of_aliases_is_no_config(tmp_path):
    """An alias to an alias to … makes a few lines billions of nodes: a job folder whose
    .hydra/config.yaml has aliases is listed as crashed, without its config."""
    from ftbench.run.result import job_record

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("\n".join(lines) + "\n")
    record_ = job_record(tmp_path)
    assert record_.status == "failed" and record_.config == {} and "config" not in record_.model_fields_set


@pytest.mark.slow
def test_a_sweep_of_two_thousand_strategies_is_reported(tmp_path):
    """The report of a huge sweep stays linear: no plot of 2000 rows."""
    base = record()
    for i in range(2000):
        for seed in (0, 1):
            data = copy.deepcopy(base)
            data.update(strategy=f"s{i}", seed=seed)
            data["config"]["strategy"]["name"] = f"s{i}"
            data["config"]["seed"] = seed
            data["metrics"]["test_acc"] = 0.5 + (i % 97) / 1000 + seed / 100
            (tmp_path / f"s{i}_{seed}").mkdir()
            (tmp_path / f"s{i}_{seed}" / "result.json").write_text(json.dumps(data))  # no fsync: fast
    runs = collect(tmp_path)
    paths = write_report(tmp_path, runs)
    md = (tmp_path / "report.md").read_text()
    assert "2000 rows: no plot is drawn above" in md and not [p for p in paths.values() if p.suffix == ".png"]
    assert len(list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))) == 2000


# -- item 11: names escaped for each format -------------------------------------------------------
FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(1)", "\tTAB", "\rCR"]


def _cells(line: str) -> list[str]:
    """A markdown table line's cells: split on the pipes not escaped by a backslash."""
    return re.split(r"(?<!\\)\|", re.sub(r"\\\\", "", line))[1:-1]


def test_names_are_escaped_for_csv_and_markdown(tmp_path):
    runs = []
    for i, name in enumerate(FORMULAS + ["a|b <script>alert(1)</script> &amp;\nx", "price $\\frac{1}{$x"]):
        for seed in (0, 1):
            data = record(name, seed, 0.5 + i / 100 + seed / 100)
            data["metrics"]["shift"] = {"noise|x": 0.9, "mean": 0.9}  # above test_acc: a negative drop
            data["metrics"]["per_class_test_acc"] = {"cat|dog": 0.5, "<b>bold</b>": 0.6, "two\nlines": None,
                                                     "=1+1": 0.2}
            data["model"] = "m|<i>"
            runs.append(data)
    failed = {"schema": 1, "status": "failed", "strategy": "=evil", "seed": 0,
              "error": "ValueError: <img src=x onerror=alert(1)> | not\ra cell"}
    root = sweep(tmp_path, runs + [failed])
    paths = write_report(root)

    rows = list(csv.reader(io.StringIO((root / "report.csv").read_bytes().decode(), newline="")))
    header, body = rows[0], rows[1:]
    for row in body:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not cell.startswith("-") or re.fullmatch(r"-[0-9.e+-]+", cell), cell
    strategies = {row[header.index("strategy")] for row in body}
    assert strategies >= {"'" + name for name in FORMULAS}
    drops = [float(cell) for row in body if (cell := row[header.index("shift_drop")])]  # numbers stay numbers
    assert len(drops) == len(FORMULAS) + 2 and all(drop < 0 for drop in drops)

    md = (root / "report.md").read_text()
    assert not re.search(r"<[A-Za-z/!?]", md)  # no tag opens
    assert not re.search(r"&(?!amp;|lt;|gt;)", md)  # every & is an entity the report wrote
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp; x" in md and "cat\\|dog" in md
    for block in re.findall(r"(?:^\|.*\n?)+", md, flags=re.MULTILINE):
        lines = block.strip("\n").split("\n")
        widths = {len(_cells(line)) for line in lines}
        assert len(widths) == 1, lines  # no name adds or removes a cell
    assert "Accuracy against training FLOPs" in paths  # a "$" in a name is no mathtext to fail on
