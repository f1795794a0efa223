"""Image folders: every file listed once, checked before training, and copies across splits.

``dataset=imagefolder`` reads ``root/<class>/<image>`` with torchvision's ``ImageFolder``,
listing files without following links to folders (a link back up a class folder would list
it many times over) and each file once however many links lead to it. Every image is read
once before training: a corrupt or truncated one is named (or skipped), and identical images
in more than one split are reported.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image
from torchvision.datasets import ImageFolder

from ftbench.run.failures import UserError, visible

log = logging.getLogger(__name__)

# What to do with a file that has an image extension but cannot be read as an image.
BAD_IMAGE_POLICIES = ("error", "skip")


def warn_shared_images(splits: dict[str, list[str]], digests: dict[str, str], root: Path) -> None:
    """Warn when identical images (by content) are in more than one split (``splits``: the
    files of each): accuracy on a split that holds copies of training images is not held out."""
    where: dict[str, dict[str, str]] = {}
    for name, files in splits.items():
        for path in files:
            where.setdefault(digests[path], {}).setdefault(name, path)
    shared = [files for files in where.values() if len(files) > 1]
    if shared:
        example = " and ".join(repr(p) for p in list(shared[0].values())[:2])
        log.warning("dataset.root=%r: %d images are in more than one split as identical copies "
                    "(e.g. %s); val/test accuracy on them is not held out: remove the copies",
                    str(root), len(shared), example)


def names(items: list[str]) -> str:
    """Folder names for a message, comma-separated, each on the message's line."""
    return ", ".join(visible(item) for item in items)


class LinkSafeImageFolder(ImageFolder):
    """torchvision's ``ImageFolder``, listing each file once: links to files are followed,
    links to folders are not (a link back up a class folder would list it over and over).

    ``setting``: the setting that names the folder, in every message about its files.
    """

    setting = "dataset.root"

    @classmethod
    def find_classes(cls, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        """Subfolders, or links to folders; a link that loops is an error."""
        classes = []
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            try:
                is_dir = stat.S_ISDIR(os.stat(entry.path).st_mode)
            except FileNotFoundError:  # a dangling link: no class
                continue
            except OSError as err:
                raise UserError(f"{cls.setting}: {entry.path!r} cannot be read "
                                f"({err.strerror}); remove it or fix the link") from err
            if is_dir:
                classes.append(entry.name)
        return classes, {name: i for i, name in enumerate(classes)}

    @classmethod
    def make_dataset(cls, directory: str | Path, class_to_idx: dict[str, int], extensions=None,
                     is_valid_file: Callable[[str], bool] | None = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        seen: set[tuple[int, int]] = set()
        samples, repeated = [], 0
        for name in sorted(class_to_idx):
            for folder, subfolders, files in os.walk(os.path.join(directory, name)):
                subfolders.sort()  # os.walk does not follow links to folders
                for file in sorted(files):
                    path = os.path.join(folder, file)
                    try:
                        info = os.stat(path)  # follows a link to a file
                    except OSError:  # a dangling or looping link
                        continue
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    if (info.st_dev, info.st_ino) in seen:
                        repeated += 1
                        continue
                    seen.add((info.st_dev, info.st_ino))
                    if is_valid_file is None or is_valid_file(path):
                        samples.append((path, class_to_idx[name]))
        if repeated:
            log.warning("%s=%r: %d files are links to (or hard links of) files listed already; "
                        "each file is used once", cls.setting, str(directory), repeated)
        empty = sorted(set(class_to_idx) - {name for name, i in class_to_idx.items()
                                            if any(label == i for _, label in samples)})
        if empty and not allow_empty:
            raise FileNotFoundError(f"Found no valid file for the classes {names(empty)}")
        return samples


def image_folder(root: Path, bad_images: str = "error", digests: dict[str, str] | None = None):
    folder = partial(LinkSafeImageFolder, str(root), loader=load_rgb, allow_empty=False,
                     is_valid_file=partial(is_readable_image, bad_images=bad_images, digests=digests))
    classes, _ = LinkSafeImageFolder.find_classes(root)
    if len(classes) < 2:
        raise UserError(f"dataset.root={str(root)!r} has {len(classes)} class folder(s); "
                        "allowed: at least 2 subfolders, one per class")
    try:
        return folder()
    except FileNotFoundError as err:  # raised for a class folder without images
        raise UserError(f"dataset.root={str(root)!r}: {visible(str(err))}") from err


# PIL reports a file that is not a (whole) image in several ways.
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def is_readable_image(path: str, bad_images: str = "error", digests: dict[str, str] | None = None,
                      setting: str = "dataset.root") -> bool:
    """Whether ``path`` is an image file to use; a corrupt one is an error or skipped.

    The check reads the whole file but decodes little: ``Image.verify`` checks a file's
    structure without decoding its pixels, and a JPEG (whose ``verify`` checks nothing) is
    decoded at an eighth of its size, which still reads every block, so a truncated one is
    caught before training starts. A file that declares more pixels than its bytes could hold
    (a 9000x9000 PNG of 100 bytes passes ``verify``) is decoded whole; under ``skip`` every file
    is, so that none fails later, at load time, what it was promised to skip. ``digests``
    collects each file's SHA-256 on the way.
    ``setting`` names the folder ``path`` is in, in the error.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    if not has_file_allowed_extension(path, IMG_EXTENSIONS):
        return False
    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "JPEG":
                image.draft(image.mode, (1, 1))
                image.load()
            else:
                image.verify()
        # verify reads no pixels: decode the file whole where it must be sure (what skip promises)
        if bad_images == "skip" or _more_pixels_than_data(image, len(data)):
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except _UNREADABLE as err:
        if bad_images == "skip":
            log.warning("skipping %r: not a readable image (%s)", path, type(err).__name__)
            return False
        raise UserError(f"{setting}: {path!r} is not a readable image ({type(err).__name__}); "
                        "remove or replace it, or set dataset.bad_images=skip") from err
    if digests is not None:
        digests[path] = hashlib.sha256(data).hexdigest()
    return True


# No image codec compresses pixels much beyond this (deflate: about 1032 to 1): a file that
# declares more pixel bytes than that over its size is decoded whole before it is trusted.
_MAX_RATIO = 1000


def _more_pixels_than_data(image: Image.Image, size: int) -> bool:
    width, height = image.size
    return width * height * max(1, len(image.getbands())) > _MAX_RATIO * max(size, 1)


def load_rgb(path: str, setting: str = "dataset.root") -> Image.Image:
    """torchvision's PIL loader, with a one-line error naming a file that fails to decode (and
    ``setting``, the folder it is in)."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except _UNREADABLE as err:
        raise UserError(f"{setting}: {path!r} could not be decoded ({type(err).__name__}); "
                        "remove or replace it") from err
