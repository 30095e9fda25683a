"""What an interrupted duplicates run leaves behind so the next run goes on from there.

One work dir per (store, collection, owner, folders, floor, neighbours), in the user's cache dir unless given:

- ``state.json``: which run this is, the phase reached, the rows read, a sample of stored ids (with when each
  was indexed) and the row count at the start, by which the collection is recognised as unchanged;
- ``vectors.f32`` and ``rows.jsonl``: every row read (its vector; its id and the fields a group shows), in the
  order read;
- ``index.faiss``, ``graph.npy`` and ``cosines.npy``: the neighbour index and graph, filled block by block;
- ``judged.jsonl``: each candidate pair the verdict judged, with the verdict (and evidence for copies), and the
  files it could not read.

A run that finishes removes its work dir (unless asked to keep it). A work dir whose collection has changed
(another row count, a sampled id gone or re-indexed) is started afresh.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import ImgsearchError
from ..evidence import Evidence
from ..verdict import Judgement

WORK_VERSION = 1  # bump when the files' meaning changes: older work dirs are started afresh
SAMPLE_IDS = 64  # stored ids checked (with their indexing time) to recognise an unchanged collection


def default_work_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imgsearch")) / "duplicates"


def work_key(uri: str, collection: str, owner: str | None, scope: str, floor: float, neighbours: int) -> str:
    """The name of a run's work dir: what it looks for, in which collection."""
    identity = json.dumps([WORK_VERSION, uri, collection, owner, scope, floor, neighbours])
    return hashlib.blake2b(identity.encode(), digest_size=10).hexdigest()


@dataclass
class State:
    """The progress of one run, saved after every step that adds to its files."""

    key: str
    total: int  # rows the collection held for this owner when reading began
    sample: dict = field(default_factory=dict)  # stored id -> indexed_at, ids spread over the rows read
    phase: str = "reading"  # reading, index, graph, judging
    rows_read: int = 0  # rows kept (in vectors.f32 and rows.jsonl)
    rows_walked: int = 0  # rows the iterator gave (those outside the folders included)
    last_id: str = ""  # the last id read: reading goes on after it (the iterator gives ids in ascending order)
    ids_ascending: bool = True
    graph_rows: int = 0  # rows whose neighbours are in graph.npy
    plan: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def still_valid(state: State, key: str, total: int, sampled_now: dict) -> bool:
    """Whether a saved run can go on: the same run, the same row count, and every sampled id still stored with
    the same indexing time (``sampled_now``: id -> indexed_at as stored now, missing ids absent)."""
    return (state.key == key and state.total == total
            and all(sampled_now.get(i) == when for i, when in state.sample.items()))


class WorkDir:
    """A run's work dir, locked for the run: two runs on one collection would write the same files."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / "LOCK", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise ImgsearchError(f"another duplicates run is using {self.path}; wait for it or give --work-dir")

    def file(self, name: str) -> Path:
        return self.path / name

    def load_state(self) -> State | None:
        try:
            data = json.loads(self.file("state.json").read_text())
            return State(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save_state(self, state: State):
        tmp = self.file("state.json.tmp")
        tmp.write_text(json.dumps(state.as_dict()))
        tmp.replace(self.file("state.json"))  # atomic: an interruption leaves the old state or the new

    def clear(self):
        """Start afresh: every file but the lock."""
        for child in self.path.iterdir():
            if child.name != "LOCK":
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    def close(self, remove: bool):
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()


class RowFile:
    """Rows (id and the fields a group shows) as JSON lines, found again by their line's offset."""

    def __init__(self, path: Path):
        self.path = path
        self.offsets: list[int] = []

    def open_existing(self, rows: int):
        """Index the first ``rows`` lines and cut off anything after them (a write interrupted midway)."""
        self.offsets, position = [], 0
        if self.path.exists():
            with open(self.path, "rb") as f:
                for line in f:
                    if len(self.offsets) == rows or not line.endswith(b"\n"):
                        break
                    self.offsets.append(position)
                    position += len(line)
        if len(self.offsets) < rows:
            raise ValueError("rows file shorter than the saved state")
        with open(self.path, "ab") as f:
            f.truncate(position)

    def append(self, rows: list[dict]):
        with open(self.path, "ab") as f:
            position = f.tell()
            for row in rows:
                line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
                f.write(line)
                self.offsets.append(position)
                position += len(line)

    def get(self, indices) -> list[dict]:
        out = []
        with open(self.path, "rb") as f:
            for i in indices:
                f.seek(self.offsets[i])
                out.append(json.loads(f.readline()))
        return out


def evidence_fields(evidence: Evidence | None) -> dict | None:
    if evidence is None:
        return None
    return {f.name: getattr(evidence, f.name) for f in fields(evidence) if getattr(evidence, f.name) is not None}


class JudgedLog:
    """The verdicts already given, appended as they come: a resumed run replays them instead of judging again."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, judged: list[tuple[int, int, Judgement]], unreadable: list[str]):
        with open(self.path, "a", encoding="utf-8") as f:
            for query, stored, judgement in judged:
                evidence = evidence_fields(judgement.evidence) if judgement.is_copy else None
                f.write(json.dumps([query, stored, judgement.match, evidence]) + "\n")
            for path in unreadable:
                f.write(json.dumps({"unreadable": path}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def replay(self) -> tuple[list[tuple[int, int, Judgement]], list[str]]:
        """The verdicts saved so far and the files found unreadable; a line cut off midway is dropped (and cut
        from the file, so what is appended next starts on a line of its own)."""
        judged, unreadable, good = [], [], 0
        if not self.path.exists():
            return judged, unreadable
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    entry = json.loads(line) if line.endswith(b"\n") else None
                except ValueError:
                    entry = None
                if entry is None:
                    break
                good += len(line)
                if isinstance(entry, dict):
                    unreadable.append(entry["unreadable"])
                    continue
                query, stored, match, evidence = entry
                judged.append((query, stored, Judgement(match, Evidence(**evidence) if evidence else None)))
        with open(self.path, "ab") as f:
            f.truncate(good)
        return judged, unreadable


def pair_keys(query: np.ndarray, stored: np.ndarray, rows: int) -> np.ndarray:
    """One int64 per unordered pair of rows."""
    query, stored = np.asarray(query, dtype=np.int64), np.asarray(stored, dtype=np.int64)
    return np.minimum(query, stored) * rows + np.maximum(query, stored)
