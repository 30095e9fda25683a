"""Which member of a group of copies is the original: rules in order, the first that singles one member out
decides and is named.

1. ``edited-from``: the member the others are crops, downscales or framed versions of (the verdict's evidence
   between each two members: ``original_shown``, ``copy_covered``, ``scale``);
2. ``most-pixels``: the most pixels once a uniform frame is cut away;
3. ``least-recompressed``: the finest JPEG quantisation (a lossless file counts as not recompressed);
4. ``earliest-mtime``: the oldest file, as a tie-break (then the path, so the choice is stable).

The rules themselves (``edit_direction``, ``choose_original``) are pure: they weigh the evidence and each member's
``Facts``; ``file_facts`` reads those from the file, and ``describe_group`` puts it together for one group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..evidence import THROUGH_COPIES, Evidence
from .groups import Copy, Group, Member
from .pairs import CopyPairs, Judge

# Groups up to this size have every pair of members judged, so rule 1 sees all relations; larger groups (bursts,
# memes) rely on the pairs that joined them.
FULL_CHECK = 8
# Evidence shares and scales this far from 1 count as an edit (cropped, framed, resized); nearer is noise.
EDIT_MARGIN = 0.10
# Pixel counts and quantisation within this share count as equal, so the next rule decides.
PIXEL_TIE = 0.02
QUANT_TIE = 0.05

RULES = ("edited-from", "most-pixels", "least-recompressed", "earliest-mtime")


@dataclass(frozen=True)
class Facts:
    """What the rules weigh about one member's file."""

    pixels: int  # after a uniform frame is cut away
    frame: tuple | None  # the picture inside a uniform frame, as fractions (left, top, right, bottom)
    quantisation: float  # mean of the JPEG luminance table; 0 for lossless files


def file_facts(path: str, width: int, height: int) -> Facts:
    from PIL import Image

    from ..errors import ImageError
    from ..features import load_image
    from ..views import uniform_frame_box

    quantisation = 0.0
    try:
        with Image.open(path) as img:
            tables = getattr(img, "quantization", None) or {}
            if tables:
                quantisation = float(np.mean(tables[min(tables)]))
    except OSError:
        pass
    pixels, frame = width * height, None
    try:
        loaded = load_image(path)
    except ImageError:
        return Facts(pixels, frame, quantisation)
    box = uniform_frame_box(loaded.image)
    if box is not None:
        w, h = loaded.image.size
        share = (box[2] - box[0]) * (box[3] - box[1]) / float(w * h)
        pixels, frame = round(width * height * share), (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
    return Facts(pixels, frame, quantisation)


def edit_direction(evidence: Evidence | None, query_frame: tuple | None, stored_frame: tuple | None) -> int:
    """From the verdict on (query as copy of stored): +1 when the stored file is the source of the query (the
    query is a crop, a downscale or a framed version of it), -1 the other way round, 0 when it does not say.

    "One shows part of the other" reads two ways (a crop of it, or it framed): the larger one is the framed copy
    when it has a uniform frame around just the part the smaller one shows; otherwise the smaller one is the crop.
    """
    if evidence is None or not evidence.is_geometric:
        return 0
    shown, covered, scale = evidence.original_shown, evidence.copy_covered, evidence.scale
    low = 1 - EDIT_MARGIN
    if shown < low <= covered:  # the query shows part of the stored picture
        return -1 if _same_box(stored_frame, evidence.original_region) else 1
    if covered < low <= shown:  # the stored picture sits inside the query
        return 1 if _same_box(query_frame, evidence.original_in_copy) else -1
    if shown >= low and covered >= low:
        if scale < low:
            return 1  # the query is the stored picture made smaller
        if scale > 1 / low:
            return -1
    return 0


def _same_box(frame: tuple | None, region, tolerance: float = 0.05) -> bool:
    """Whether a uniform frame surrounds just this region (fractions of the same picture)."""
    return frame is not None and all(abs(a - b) <= tolerance for a, b in zip(frame, region))


def choose_original(members: list[Member], relations: dict, facts: dict[str, Facts]) -> tuple[Member, str, str]:
    """(original, rule, reason). ``relations``: (query id, stored id) -> evidence of query as a copy of stored."""
    candidates, decided = _edited_from(members, relations, facts)
    if decided:
        return candidates[0], RULES[0], "the others are crops, downscales or framed versions of it"
    most = max(facts[m.id].pixels for m in candidates)
    candidates = [m for m in candidates if facts[m.id].pixels >= most * (1 - PIXEL_TIE)]
    if len(candidates) == 1:
        return candidates[0], RULES[1], f"{most:,} pixels without frames, the most in the group"
    finest = min(facts[m.id].quantisation for m in candidates)
    candidates = [m for m in candidates if facts[m.id].quantisation <= finest * (1 + QUANT_TIE) + 1e-9]
    if len(candidates) == 1:
        found = "lossless" if finest == 0 else f"JPEG quantisation {finest:.1f} (mean luminance step)"
        return candidates[0], RULES[2], f"least recompressed: {found}"
    earliest = min(candidates, key=lambda m: (m.mtime, m.path))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(earliest.mtime))
    return earliest, RULES[3], f"no edit or quality sets them apart; modified first ({when})"


def _edited_from(members: list[Member], relations: dict, facts: dict[str, Facts]) -> tuple[list[Member], bool]:
    """Rule 1: the members no other is an edit of (all when the evidence says nothing), and whether that is one
    member that the others were made from."""
    beaten: dict[str, str] = {}
    for (query, stored), evidence in relations.items():
        direction = edit_direction(evidence, facts[query].frame, facts[stored].frame)
        if direction:
            loser, winner = (query, stored) if direction > 0 else (stored, query)
            beaten.setdefault(loser, winner)
    unbeaten = [m for m in members if m.id not in beaten]
    if beaten and len(unbeaten) == 1:
        return unbeaten, True
    return unbeaten or list(members), False


def describe_group(pairs: CopyPairs, group_ids: list[str], judge: Judge, vectors: dict[str, np.ndarray]) -> Group:
    """The original of one group and each copy's evidence relative to it."""
    members = [Member.from_row(pairs.rows[i]) for i in group_ids]
    by_id = {m.id: m for m in members}
    verdicts = dict(pairs.judged)

    def verdict_of(query: str, stored: str):
        if (query, stored) not in verdicts:
            similarity = float(np.dot(vectors[query], vectors[stored]))
            verdicts[(query, stored)] = judge(pairs.rows[query], pairs.rows[stored], similarity)
        return verdicts[(query, stored)]

    if len(members) <= FULL_CHECK:
        for i, a in enumerate(group_ids):
            for b in group_ids[i + 1 :]:
                if (a, b) not in verdicts and (b, a) not in verdicts:
                    verdict_of(a, b)
    relations = {key: judgement.evidence for key, judgement in verdicts.items()
                 if judgement.is_copy and key[0] in by_id and key[1] in by_id}
    facts = {m.id: file_facts(m.path, m.width, m.height) for m in members}
    original, rule, reason = choose_original(members, relations, facts)
    copies = []
    for m in members:
        if m.id == original.id:
            continue
        judgement = verdict_of(m.id, original.id)
        evidence = judgement.evidence if judgement.is_copy else Evidence(THROUGH_COPIES)
        copies.append(Copy(m, float(np.dot(vectors[m.id], vectors[original.id])), evidence))
    copies.sort(key=lambda c: -c.similarity)
    return Group(original, copies, rule, reason)
