"""Finding image files under folders: recursive, hidden files skipped unless asked, no symlink loops."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Extensions that mark a file as meant to be an image: such a file that fails to decode is a failure to
# report, while any other file that is no image is simply not counted (a sidecar .xmp, a video, a note).
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .gif .webp .bmp .dib .tif .tiff .heic .heif .avif .ppm .pgm .pbm .ico .tga".split()
)


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, as found (symlinks not resolved, so the user sees their own paths)
    size: int
    mtime: float


def looks_like_image_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def walk_files(paths: Iterable[str], include_hidden: bool = False, errors: list | None = None) -> Iterator[FileEntry]:
    """Every regular file under ``paths`` (files given directly are always included), in a stable order.

    Unreadable folders and missing paths are appended to ``errors`` as (path, reason) and skipped.
    """
    errors = errors if errors is not None else []
    seen_dirs: set[tuple[int, int]] = set()
    for top in paths:
        top = os.path.abspath(os.fspath(top))
        try:
            st = os.stat(top)
        except OSError as e:
            errors.append((top, e.strerror or str(e)))
            continue
        if not os.path.isdir(top):
            yield FileEntry(top, st.st_size, st.st_mtime)
            continue
        yield from _walk_dir(top, include_hidden, seen_dirs, errors)


def _walk_dir(top, include_hidden, seen_dirs, errors):
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            errors.append((folder, e.strerror or str(e)))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:  # a symlink loop, or the same folder reached twice
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            errors.append((folder, e.strerror or str(e)))
            continue
        subdirs = []
        for entry in entries:
            if not include_hidden and entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    subdirs.append(entry.path)
                elif entry.is_file(follow_symlinks=True):
                    est = entry.stat(follow_symlinks=True)
                    yield FileEntry(entry.path, est.st_size, est.st_mtime)
            except OSError as e:  # a dangling symlink, a file removed meanwhile
                errors.append((entry.path, e.strerror or str(e)))
        stack.extend(reversed(subdirs))
