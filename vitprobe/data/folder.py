"""``folder:PATH``: an ImageFolder tree, ``PATH/<class>/**/<image>``, label ``class``."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitprobe.data.base import IMAGENET_MEAN, IMAGENET_STD, RawItem, VitprobeDataset
from vitprobe.data.images import IMAGE_EXTENSIONS, check_images, load_rgb, other_image_suffixes
from vitprobe.errors import DataError, abbreviate, plural, warn_user

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


@dataclass
class Walked:
    """What walking one folder met: its image files with their real paths (in sorted order),
    the paths it reached again through symbolic links (a link back up the tree, a second link
    to one file), files in formats PIL opens but vitprobe does not read (by suffix), and
    symbolic links without an image's name whose target does not exist (a class folder moved
    away); a broken link with an image's name is an image, which checking finds unreadable."""

    images: list[tuple[Path, str]] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    other_formats: Counter[str] = field(default_factory=Counter)
    broken_links: list[str] = field(default_factory=list)


def image_files(root: Path, within: str | None = None) -> Walked:
    """Image files under root (any depth, through symbolic links; hidden entries and
    ``__MACOSX`` left out), sorted by path, each with its real path. A folder or file whose
    real path was reached before in this walk, or a folder whose real path is ``within`` (the
    real dataset folder that holds root) or holds it, is not read (again); its path goes to
    ``repeated``."""
    walked, seen = Walked(), set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen or (within is not None and (within + os.sep).startswith(real + os.sep)):
            walked.repeated.append(folder)
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(d for d in subfolders if _is_visible(d))
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not _is_image_name(name):
                suffix = Path(name).suffix.lower()
                if _is_visible(name) and suffix in other_image_suffixes():
                    walked.other_formats[suffix] += 1
                elif _is_visible(name) and _is_broken_link(path):
                    walked.broken_links.append(path)
                continue
            target = os.path.realpath(path) if os.path.islink(path) else os.path.join(real, name)
            if target in seen:
                walked.repeated.append(path)
                continue
            seen.add(target)
            walked.images.append((Path(path), target))
    walked.images.sort()
    return walked


def _is_broken_link(path: str) -> bool:
    """A symbolic link whose target does not exist."""
    return os.path.islink(path) and not os.path.exists(path)


def _by_class(root: Path, classes: list[str]) -> tuple[dict[str, list[Path]], list[tuple[str, str]], Walked]:
    """The image files of each class folder, each file read once over all classes: under the
    class whose (real) folder holds it, else the first class that reaches it through a link
    (a link back up to root or above it is not followed: it would reach the images directly in
    root, which belong to no class, and every class). Also (path, real path) of each other
    path that reached a file or folder again, and what the walks left out (``other_formats``,
    ``broken_links``)."""
    walks = {name: image_files(root / name, within=os.path.realpath(root)) for name in classes}
    holders = {name: os.path.realpath(root / name) + os.sep for name in classes}

    def holding(name: str, target: str) -> int:  # how deep the class's own folder holds it (0: not)
        return len(holders[name]) if target.startswith(holders[name]) else 0

    owner: dict[str, str] = {}
    for name, walked in walks.items():
        for _, target in walked.images:
            if target not in owner or holding(name, target) > holding(owner[target], target):
                owner[target] = name
    files: dict[str, list[Path]] = {}
    repeated: list[tuple[str, str]] = []
    for name, walked in walks.items():
        files[name] = [path for path, target in walked.images if owner[target] == name]
        repeated += [(str(path), target) for path, target in walked.images if owner[target] != name]
        repeated += [(path, os.path.realpath(path)) for path in walked.repeated]
    left_out = Walked(other_formats=sum((walked.other_formats for walked in walks.values()), Counter()),
                      broken_links=[link for walked in walks.values() for link in walked.broken_links])
    return files, repeated, left_out


def _entries(root: Path) -> tuple[list[str], list[Path], list[str]]:
    """The visible sub-folders of root (names, sorted), the image files directly in it, and its
    other visible symbolic links whose target does not exist; an entry that cannot be examined
    (a link loop) counts as a file, so that checking it says why it is left out."""
    folders, files, broken = [], [], []
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
            elif _is_visible(entry.name) and _is_broken_link(entry.path):
                broken.append(entry.path)
    return sorted(folders), sorted(files), sorted(broken)


def warn_skipped(spec: str, bad: list[tuple[Path, str]], what: str = "unreadable file(s)") -> None:
    """One warning naming how many items were left out and the first few files to blame."""
    if not bad:
        return
    shown = abbreviate([f"{path} ({reason})" for path, reason in bad], SHOWN_BAD_FILES, sep="; ")
    warn_user(f"dataset {spec!r}: skipped {len(bad)} {what}: {shown}")


def _warn_of_layout(spec: str, root: Path, classes: list[str], loose: list[Path],
                    repeated: list[tuple[str, str]], left_out: Walked) -> None:
    """Warn of what the folder's layout leaves out or reads once: a VOC or split layout read as
    classes, loose images beside class folders, files reached again through links, files in
    formats vitprobe does not read, and links to nothing (a class folder moved away)."""
    _warn_if_voc(spec, root)
    if classes and loose:
        warn_user(f"dataset {spec!r}: left out {len(loose)} image(s) directly in {root} (e.g. "
                  f"{loose[0].name}): with class folders, every image must be in one")
    _warn_if_splits(spec, root, classes)
    if repeated and classes:
        path, target = repeated[0]
        warn_user(f"dataset {spec!r}: {len(repeated)} folder(s) or file(s) reached again through symbolic "
                  f"links were read once, under the class folder that holds them, else the first that "
                  f"reaches them (e.g. {path} is {target})")
    if left_out.other_formats:
        formats = ", ".join(f"{s} {n}" for s, n in sorted(left_out.other_formats.items()))
        warn_user(f"dataset {spec!r}: left out {sum(left_out.other_formats.values())} file(s) in formats "
                  f"vitprobe does not read ({formats}); convert them to PNG or JPEG to include them")
    if left_out.broken_links:
        link = left_out.broken_links[0]
        warn_user(f"dataset {spec!r}: left out {len(left_out.broken_links)} symbolic link(s) whose target does "
                  f"not exist (e.g. {link} -> {os.readlink(link)}); restore the target or remove the link")


def _readable(groups: list[list[Path]]) -> tuple[list[Path], list[int], list[tuple[Path, str]]]:
    """The readable files of ``groups`` (group i holds class i's images), their labels, and the
    unreadable ones with the reason."""
    verdicts = iter(check_images([file for group in groups for file in group]))
    files: list[Path] = []
    targets: list[int] = []
    bad: list[tuple[Path, str]] = []
    for label, group in enumerate(groups):
        for file in group:
            reason = next(verdicts)
            if reason is None:
                files.append(file)
                targets.append(label)
            else:
                bad.append((file, reason))
    return files, targets, bad


class FolderDataset(VitprobeDataset):
    """Class sub-folders in sorted order give label ids; images are checked once when built.

    A folder with images but no sub-folders that hold any is read without labels (analyses
    that need labels cannot run on it). Every file with an image extension is checked once
    (``check_image``); failures are left out, counted in ``skipped`` and warned about once, so
    indices stay stable. Files in other formats that PIL opens (.psd, .ico, ...) are left out
    with a warning; other files and hidden ones are ignored. Symbolic links are followed (not
    back up to PATH), a folder or file reached twice is read once, under the class folder that
    holds it, and links to nothing are warned of. Class folders named like splits (train, val)
    are warned about. With a split, the tree is read from ``PATH/<split>``.
    """

    kind = "folder"

    def __init__(self, spec: str, path: Path, image_size: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 split: str | None = None) -> None:
        root = existing_dir(spec, path, "folder")
        if split is not None:
            root = existing_dir(spec, root / split, f"split {split!r}: folder")
        try:
            folders, loose, broken = _entries(root)
        except OSError as error:
            raise DataError(f"dataset {spec!r}: cannot list {root} ({error}); "
                            f"check its permissions") from error
        in_folders, repeated, left_out = _by_class(root, folders)
        left_out.broken_links[:0] = broken
        flat = bool(loose) and not any(in_folders.values())  # sub-folders without images are no classes
        classes = [] if flat else folders
        if not classes and not loose:
            raise DataError(f"dataset {spec!r}: {root} holds no images; put them in {root}/<class name>/ "
                            f"(or directly in {root} for data without labels)")
        super().__init__(spec, image_size, mean, std, class_names={"class": classes} if classes else {},
                         has_masks=False, split=split)
        self.root = root
        _warn_of_layout(spec, root, classes, loose, repeated, left_out)
        self.files, targets, bad = _readable([in_folders[name] for name in classes] if classes else [loose])
        self.skipped = len(bad)
        if not self.files and classes and loose:
            raise DataError(f"dataset {spec!r}: no readable image in the sub-folders of {root} "
                            f"({abbreviate(classes, 3)}: {len(bad)} unreadable), and the {plural(len(loose), 'image')} "
                            "directly in it are left out because it has sub-folders; remove those sub-folders to "
                            f"read {root} without labels, or put its images in class folders")
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


SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


def _warn_if_splits(spec: str, root: Path, classes: list[str]) -> None:
    """Warn when the class folders are named like splits (Imagenette's train/ and val/): the
    split would be read as the label."""
    if classes and all(name.lower() in SPLIT_NAMES for name in classes):
        found = (f"the class folders of {root} are {', '.join(classes)}, which name splits" if len(classes) > 1
                 else f"the only class folder of {root} is {classes[0]}, which names a split")
        warn_user(f"dataset {spec!r}: {found}, so the split is read as the label; read one split with its "
                  f"classes: folder:{root / classes[-1]}")


def _warn_if_voc(spec: str, root: Path) -> None:
    """Warn when ``root`` is a PASCAL VOC folder read as an ImageFolder (masks as images)."""
    from vitprobe.data.voc import looks_like_voc

    if looks_like_voc(root):
        warn_user(f"dataset {spec!r}: {root} has the PASCAL VOC layout but is read as class folders "
                  f"(its mask PNGs as images); for images with masks use voc:{root}")
