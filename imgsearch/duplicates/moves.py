"""Moving copies out of the way, safely: their folders kept relative to a common root, nothing overwritten,
each moved row given its new path, and a **moves journal** (a JSON file; older versions called it a manifest)
written before the first move and after each one, which ``undo_moves`` reverses. Nothing is deleted.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field

from ..errors import ImgsearchError
from ..store import Collection, row_id
from .groups import Group

JOURNAL_VERSION = 1


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    id: str  # the row's id before the move


@dataclass
class MoveResult:
    moved: int
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    journal: str = ""


@dataclass
class UndoResult:
    restored: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def plan_moves(groups: list[Group], destination: str) -> list[Move]:
    """Where each copy would go: DESTINATION/<its path relative to the copies' common folder>, never onto a file
    that exists (nor onto another planned move): a taken name gets " (2)", " (3)"... before its extension."""
    copies = [c.member for g in groups for c in g.copies]
    if not copies:
        return []
    destination = os.path.abspath(destination)
    root = os.path.commonpath([os.path.dirname(os.path.abspath(m.path)) for m in copies])
    taken: set[str] = set()
    moves = []
    for m in copies:
        target = free_name(os.path.join(destination, os.path.relpath(os.path.abspath(m.path), root)), taken)
        taken.add(target)
        moves.append(Move(m.path, target, m.id))
    return moves


def free_name(target: str, taken: set[str]) -> str:
    """``target``, or the first of "stem (2).ext", "stem (3).ext"... that is neither taken nor on disk."""
    stem, ext = os.path.splitext(target)
    n = 1
    while target in taken or os.path.lexists(target):
        n += 1
        target = f"{stem} ({n}){ext}"
    return target


def move_file(source: str, target: str):
    """Move without ever replacing a file at ``target``: a hard link (fails if target exists) then unlink; across
    file systems, an exclusive-create copy then unlink."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copystat(source, target)
    os.unlink(source)


def _repath_row(collection: Collection, old_id: str, new_path: str) -> bool:
    """Give a row a new path (its id follows the path): the new row is written before the old one goes."""
    from ..store import FIELDS

    found = collection.get([old_id], fields=("vector", *FIELDS)).get(old_id)
    if found is None:
        return False
    row = {k: found[k] for k in ("vector", *FIELDS)}
    row.update(id=row_id(new_path), path=new_path)
    collection.upsert([row])
    collection.delete([old_id])
    return True


def move_copies(collection: Collection, moves: list[Move], journal_path: str, store_uri: str) -> MoveResult:
    """Move each planned copy and re-path its row; the journal is written before the first move and after each
    one, so even an interrupted run can be undone."""
    journal = {"version": JOURNAL_VERSION, "uri": store_uri, "collection": collection.name,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "moves": [{"from": m.source, "to": m.target, "id": m.id, "done": False} for m in moves]}
    _write_journal(journal_path, journal)
    result = MoveResult(0, journal=journal_path)
    for entry in journal["moves"]:
        try:
            move_file(entry["from"], entry["to"])
        except OSError as e:
            result.failed.append((entry["from"], e.strerror or str(e)))
            continue
        entry["done"] = True
        entry["row"] = _repath_row(collection, entry["id"], entry["to"])
        _write_journal(journal_path, journal)
        result.moved += 1
    return result


def _write_journal(path: str, journal: dict):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(journal, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def read_journal(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            journal = json.load(f)
    except (OSError, ValueError) as e:
        raise ImgsearchError(f"{path}: not a readable duplicates moves journal ({e})") from None
    if not isinstance(journal, dict) or journal.get("version") != JOURNAL_VERSION or "moves" not in journal:
        raise ImgsearchError(f"{path}: not a duplicates moves journal of this imgsearch")
    return journal


def undo_moves(collection: Collection, journal: dict) -> UndoResult:
    """Move every moved copy back to where it was and give its row the old path again; nothing is overwritten
    (a file back in the old place is left alone and reported)."""
    result = UndoResult(0)
    for entry in journal["moves"]:
        if not entry.get("done"):
            continue
        if os.path.lexists(entry["from"]):
            result.skipped.append((entry["to"], f"{entry['from']} exists already"))
            continue
        try:
            move_file(entry["to"], entry["from"])
        except OSError as e:
            result.skipped.append((entry["to"], e.strerror or str(e)))
            continue
        _repath_row(collection, row_id(entry["to"]), entry["from"])
        result.restored += 1
    return result
