"""``folder:PATH``: an ImageFolder tree, ``PATH/<class>/**/<image>``, label ``class``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset
from vitprobe.data.images import IMAGE_EXTENSIONS, check_images, load_rgb
from vitprobe.errors import DataError, abbreviate, warn_user

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


IGNORED_FOLDERS = frozenset({"__MACOSX"})  # resource forks a macOS zip adds beside the files


def _is_visible(name: str) -> bool:
    return not name.startswith(".") and name not in IGNORED_FOLDERS


def _is_image_name(name: str) -> bool:
    return _is_visible(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def image_files(root: Path, seen: set[str], repeated: list[str]) -> list[Path]:
    """Image files under root (any depth, through symbolic links; hidden entries and
    ``__MACOSX`` left out), sorted by path. A folder whose real path is in ``seen`` (reached
    before through another link, or a link back up the tree) is not read again; its path is
    added to ``repeated``."""
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            repeated.append(folder)
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = [d for d in subfolders if _is_visible(d)]
        found += [Path(folder, f) for f in files if _is_image_name(f)]
    return sorted(found)


def _entries(root: Path) -> tuple[list[str], list[Path]]:
    """The visible sub-folders of root (names, sorted) and the image files directly in it; an
    entry that cannot be examined (a link loop) counts as a file, so that checking it says why
    it is left out."""
    folders, files = [], []
    with os.scandir(root) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir and _is_visible(entry.name):
                folders.append(entry.name)
            elif not is_dir and _is_image_name(entry.name):
                files.append(Path(entry.path))
    return sorted(folders), sorted(files)


def warn_skipped(spec: str, bad: list[tuple[Path, str]], what: str = "unreadable file(s)") -> None:
    """One warning naming how many items were left out and the first few files to blame."""
    if not bad:
        return
    shown = abbreviate([f"{path} ({reason})" for path, reason in bad], SHOWN_BAD_FILES, sep="; ")
    warn_user(f"dataset {spec!r}: skipped {len(bad)} {what}: {shown}")


class FolderDataset(VitprobeDataset):
    """Class sub-folders in sorted order give label ids; images are checked once when built.

    A folder with images but no sub-folders that hold any is read without labels (analyses
    that need labels cannot run on it). Every file with an image extension is checked once
    (``check_image``); failures are left out, counted in ``skipped`` and warned about once, so
    indices stay stable. Files with other extensions and hidden files are ignored; symbolic
    links are followed, and a folder reached twice is read once. With a split, the tree is
    read from ``PATH/<split>``.
    """

    kind = "folder"

    def __init__(self, spec: str, path: Path, image_size: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 split: str | None = None) -> None:
        root = existing_dir(spec, path, "folder")
        if split is not None:
            root = existing_dir(spec, root / split, f"split {split!r}: folder")
        try:
            folders, loose = _entries(root)
        except OSError as error:
            raise DataError(f"dataset {spec!r}: cannot list {root} ({error}); "
                            f"check its permissions") from error
        seen: set[str] = set()
        repeated: list[str] = []
        in_folders = {name: image_files(root / name, seen, repeated) for name in folders}
        flat = bool(loose) and not any(in_folders.values())  # sub-folders without images are no classes
        classes = [] if flat else folders
        if not classes and not loose:
            raise DataError(f"dataset {spec!r}: {root} holds no images; put them in {root}/<class name>/ "
                            f"(or directly in {root} for data without labels)")
        super().__init__(spec, image_size, mean, std, class_names={"class": classes} if classes else {},
                         has_masks=False, split=split)
        self.root = root
        _warn_if_voc(spec, root)
        if classes and loose:
            warn_user(f"dataset {spec!r}: left out {len(loose)} image(s) directly in {root} (e.g. "
                      f"{loose[0].name}): with class folders, every image must be in one")
        if repeated:
            warn_user(f"dataset {spec!r}: {len(repeated)} folder(s) reached again through symbolic links "
                      f"(e.g. {repeated[0]}) were read once, under the first class that reaches them")
        groups = [in_folders[name] for name in classes] if classes else [loose]
        verdicts = iter(check_images([file for group in groups for file in group]))
        self.files: list[Path] = []
        targets: list[int] = []
        bad: list[tuple[Path, str]] = []
        for label, group in enumerate(groups):
            for file in group:
                reason = next(verdicts)
                if reason is None:
                    self.files.append(file)
                    targets.append(label)
                else:
                    bad.append((file, reason))
        self.skipped = len(bad)
        if not self.files:
            where = f"{root}/<class>/" if classes else str(root)
            raise DataError(f"dataset {spec!r}: no readable images under {where} "
                            f"({len(bad)} unreadable); add .jpg/.png files")
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
        labels = {"class": int(self.targets[index])} if self.label_names else {}
        return image, labels, None

    def class_counts(self) -> dict[str, list[int]]:
        return {name: np.bincount(self.targets, minlength=self.num_classes[name]).tolist()
                for name in self.label_names}


def _warn_if_voc(spec: str, root: Path) -> None:
    """Warn when ``root`` is a PASCAL VOC folder read as an ImageFolder (masks as images)."""
    from vitprobe.data.voc import looks_like_voc

    if looks_like_voc(root):
        warn_user(f"dataset {spec!r}: {root} has the PASCAL VOC layout but is read as class folders "
                  f"(its mask PNGs as images); for images with masks use voc:{root}")
