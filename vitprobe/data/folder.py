"""``folder:PATH``: an ImageFolder tree, ``PATH/<class>/**/<image>``, label ``class``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset
from vitprobe.data.images import IMAGE_EXTENSIONS, load_rgb, verify_image
from vitprobe.errors import DataError, warn_user

SHOWN_BAD_FILES = 3


def existing_dir(spec: str, path: Path, what: str) -> Path:
    """``path`` if it is a directory, else DataError (also for names the OS rejects)."""
    try:
        if path.is_dir():
            return path
        problem = "is not a directory" if path.exists() else "does not exist"
    except (OSError, ValueError) as error:
        problem = f"cannot be read ({error})"
    raise DataError(f"dataset {spec!r}: {what} {str(path)!r} {problem}; give an existing directory")


def _is_visible(name: str) -> bool:
    return not name.startswith(".")


def image_files(root: Path) -> list[Path]:
    """Image files under root (any depth, hidden entries left out), sorted by path."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if _is_visible(d)]
        found += [Path(folder, f) for f in files
                  if _is_visible(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found)


def warn_skipped(spec: str, bad: list[tuple[Path, str]], what: str = "unreadable file(s)") -> None:
    """One warning naming how many items were left out and the first few files to blame."""
    if not bad:
        return
    shown = "; ".join(f"{path} ({reason})" for path, reason in bad[:SHOWN_BAD_FILES])
    more = f"; and {len(bad) - SHOWN_BAD_FILES} more" if len(bad) > SHOWN_BAD_FILES else ""
    warn_user(f"dataset {spec!r}: skipped {len(bad)} {what}: {shown}{more}")


class FolderDataset(VitprobeDataset):
    """Class sub-folders in sorted order give label ids; images are checked once when built.

    Every file with an image extension is opened and ``Image.verify``-ed (header and chunk
    structure, no decoding); failures are left out, counted in ``skipped`` and warned about
    once, so indices stay stable. Files with other extensions and hidden files are ignored.
    With a split, the tree is read from ``PATH/<split>``.
    """

    kind = "folder"

    def __init__(self, spec: str, path: Path, image_size: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 split: str | None = None) -> None:
        root = existing_dir(spec, path, "folder")
        if split is not None:
            root = existing_dir(spec, root / split, f"split {split!r}: folder")
        try:
            classes = sorted(entry.name for entry in os.scandir(root)
                             if entry.is_dir() and _is_visible(entry.name))
        except OSError as error:
            raise DataError(f"dataset {spec!r}: cannot list {root} ({error}); "
                            f"check its permissions") from error
        if not classes:
            raise DataError(f"dataset {spec!r}: {root} has no class sub-folders; "
                            f"put images in {root}/<class name>/")
        super().__init__(spec, image_size, mean, std, class_names={"class": classes},
                         has_masks=False, split=split)
        self.root = root
        self.files: list[Path] = []
        targets: list[int] = []
        bad: list[tuple[Path, str]] = []
        for label, name in enumerate(classes):
            for file in image_files(root / name):
                reason = verify_image(file)
                if reason is None:
                    self.files.append(file)
                    targets.append(label)
                else:
                    bad.append((file, reason))
        self.skipped = len(bad)
        if not self.files:
            raise DataError(f"dataset {spec!r}: no readable images under {root}/<class>/ "
                            f"({len(bad)} unreadable); add .jpg/.png files to the class folders")
        warn_skipped(spec, bad)
        self.targets = np.asarray(targets, dtype=np.int64)
        empty = [name for label, name in enumerate(classes) if not np.any(self.targets == label)]
        if empty:
            warn_user(f"dataset {spec!r}: class folder(s) {', '.join(empty)} hold no readable image; "
                      "the class is counted but never seen (remove the folder or add images)")

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> RawItem:
        image = load_rgb(self.files[index], self.image_size, self.spec)
        return image, {"class": int(self.targets[index])}, None

    def class_counts(self) -> dict[str, list[int]]:
        return {"class": np.bincount(self.targets, minlength=self.num_classes["class"]).tolist()}
