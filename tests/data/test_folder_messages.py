"""Messages about image folders: each stays on one line whatever the folder names hold, and
names the setting the folder came from (dataset.root or dataset.ood_root)."""

from __future__ import annotations

import pytest

from ftbench.data import FineTuneDataModule
from ftbench.run.failures import UserError, one_line, visible
from tests.helpers import FAST, image_folder, make_cfg

NEWLINE_CLASS = "ca\nt"  # a legal folder name on Linux


def refused(*overrides: str) -> str:
    """The message loading the data with ``overrides`` ends in (it must be one line)."""
    dm = FineTuneDataModule(make_cfg(*FAST, *overrides).dataset, batch_size=8)
    with pytest.raises(UserError) as err:
        dm.load()
    message = str(err.value)
    assert "\n" not in message and one_line(err.value) == message
    return message


def test_control_characters_are_escaped_and_other_characters_kept():
    assert visible("ca\nt\t\x1b[31mé") == "ca\\nt\\t\\x1b[31mé"
    assert one_line(UserError("folder 'a\nb' is bad")) == "folder 'a\\nb' is bad"


def test_an_empty_class_folder_with_a_newline_in_its_name_is_named_on_one_line(tmp_path):
    root = image_folder(tmp_path / "images", {"dog": 10, NEWLINE_CLASS: 0})
    message = refused("dataset=imagefolder", f"dataset.root={root}")
    assert message.startswith(f"dataset.root={str(root)!r}: ")
    assert message.endswith("Found no valid file for the classes ca\\nt")


def test_a_foreign_ood_class_with_a_newline_in_its_name_is_named_on_one_line(tmp_path):
    ood = image_folder(tmp_path / "camera2", ("3", NEWLINE_CLASS), per_class=2)
    message = refused(f"dataset.ood_root={ood}")
    assert "class folder(s) ca\\nt not among the training classes; allowed: 0, 1, 2" in message


def test_an_empty_ood_class_folder_is_named_as_ood_root(tmp_path):
    ood = image_folder(tmp_path / "camera2", {"3": 2, "7": 0})
    expected = f"dataset.ood_root={str(ood)!r}: Found no valid file for the classes 7"
    assert refused(f"dataset.ood_root={ood}") == expected


def test_a_corrupt_file_under_ood_root_is_named_as_ood_root(tmp_path, caplog):
    ood = image_folder(tmp_path / "camera2", ("3", "7"), per_class=2)
    broken = ood / "7" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    message = refused(f"dataset.ood_root={ood}")
    assert message.startswith(f"dataset.ood_root: {str(broken)!r} is not a readable image")
    assert "dataset.root" not in message

    dm = FineTuneDataModule(make_cfg(*FAST, f"dataset.ood_root={ood}", "dataset.bad_images=skip").dataset,
                            batch_size=8)
    dm.load()
    assert len(dm.ood) == 4 and "broken.png" in caplog.text
    with pytest.raises(UserError, match=r"^dataset\.ood_root: .*broken\.png' could not be decoded"):
        dm.ood.loader(str(broken))  # a file that turns bad after the check, read in training


def test_files_under_dataset_root_are_still_named_as_root(tmp_path):
    root = image_folder(tmp_path / "images", {"cat": 10, "dog": 10})
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    message = refused("dataset=imagefolder", f"dataset.root={root}")
    assert message.startswith("dataset.root: ") and "broken.png' is not a readable image" in message
