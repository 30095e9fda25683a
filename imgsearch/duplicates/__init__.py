"""Every group of copies in a collection, and the original of each, chosen with evidence.

- ``pairs``: walking the stored vectors, judging candidate pairs with the copy verdict, union-find into groups;
- ``original``: the rules that choose each group's original, in order;
- ``groups``: what is reported (``Report``, ``Group``, ``Copy``, ``Member``);
- ``moves``: moving copies aside with a moves journal, and undoing it;
- ``export``: CSV and an offline HTML contact sheet.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from ..store import Collection
from ..verdict import Verifier
from .groups import Copy, Group, Member, Report
from .moves import Move, MoveResult, UndoResult, move_copies, plan_moves, read_journal, undo_moves
from .original import RULES, choose_original, describe_group, edit_direction
from .pairs import CANDIDATE_FLOOR, NEIGHBOURS, PHASES, CopyPairs, FileJudge, Progress, find_copy_pairs

__all__ = [
    "CANDIDATE_FLOOR", "NEIGHBOURS", "PHASES", "RULES", "Copy", "CopyPairs", "FileJudge", "Group", "Member",
    "Move", "MoveResult", "Report", "UndoResult", "choose_original", "edit_direction", "find_copy_pairs",
    "find_duplicates", "move_copies", "plan_moves", "read_journal", "undo_moves",
]


def find_duplicates(
    collection: Collection,
    owner: str | None = None,
    under: Iterable[str] = (),
    verifier: Verifier | None = None,
    progress: Progress | None = None,
    floor: float = CANDIDATE_FLOOR,
    neighbours: int = NEIGHBOURS,
    work_dir: str | os.PathLike | None = None,
    keep_work: bool = False,
) -> Report:
    """Every group of copies (optionally only among files under the folders ``under``), each with its original.

    An interrupted run leaves its progress under ``work_dir`` (default: the user's cache dir) and the next one goes
    on from there (``pairs.find_copy_pairs``)."""
    judge = FileJudge(verifier)
    roots = tuple(os.path.abspath(p).rstrip(os.sep) + os.sep for p in under)
    keep = (lambda row: row.get("path", "").startswith(roots)) if roots else None
    pairs = find_copy_pairs(collection, judge, owner=owner, floor=floor, neighbours=neighbours,
                            progress=progress, keep=keep, scope="\n".join(sorted(roots)), work_dir=work_dir,
                            keep_work=keep_work)
    report = Report(rows=pairs.rows_walked)
    for group_ids in pairs.groups:
        stored = collection.get(group_ids, fields=("vector",))
        vectors = {i: np.asarray(stored[i]["vector"], dtype=np.float32) for i in group_ids}
        report.groups.append(describe_group(pairs, group_ids, judge, vectors))
    report.groups.sort(key=lambda g: g.original.path)
    report.pairs_judged = pairs.pairs_judged
    report.unreadable = list(judge.unreadable)
    return report
