"""Which member of a group of copies is the original: rules in order, the first that singles one member out
decides and is named.

1. ``edited-from``: the member the others are crops, downscales or framed versions of (the verdict's evidence
   between each two members: ``original_shown``, ``copy_covered``, ``scale``);
2. ``most-pixels``: the most pixels once a frame is cut away (a frame the evidence confirmed: the margin of one
   member outside the part another shows is uniform, of any colour);
3. ``least-recompressed``: the finest JPEG quantisation (a lossless file counts as not recompressed);
4. ``earliest-mtime``: the oldest file, as a tie-break (then the path, so the choice is stable); where the files
   are identical, the reason says so: no rule can tell them apart.

Why this order: an edit (a crop, a downscale, a frame) is direct evidence of which file was made from which, so it
goes first; without one, more picture is more likely the source (a copy loses pixels, it rarely gains them); then
less recompression (each save loses quality); the date last, since copying a file can give it any date. A rule
that does not single one member out (equal pixels within 2%, equal quantisation within 5%) passes the tied ones
to the next.

The rules themselves (``edit_direction``, ``choose_original``) are pure: they weigh the evidence and each member's
``Facts``; ``file_facts`` reads those from the file, and ``describe_group`` puts it together for one group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

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

    pixels: int  # width x height, less a frame the evidence confirmed (see ``frame_checks``)
    quantisation: float  # mean of the JPEG luminance table; 0 for lossless files
    digest: str = ""  # the file's bytes, hashed: equal digests are identical files


# A margin (what lies outside the part another member shows) is a frame when this share of its pixels is within
# FRAME_TOLERANCE grey levels (any channel) of its own median colour, on every side that has one: a black border, a
# white mat, a grey viewer window, whatever the picture's own edges look like. JPEG at quality 20 moves a flat
# colour by a few levels; a photo's own sky or wall varies more across a strip.
FRAME_SHARE = 0.9
FRAME_TOLERANCE = 12
FRAME_INSET = 0.02  # the evidence's box is good to a few pixels: the strip starts this share of a side outside it
FRAME_MIN_SIDE = 0.01  # a side narrower than this has no strip


def file_facts(path: str, width: int, height: int) -> Facts:
    import hashlib

    from PIL import Image

    quantisation, digest = 0.0, ""
    try:
        with open(path, "rb") as f:
            digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
        with Image.open(path) as img:
            tables = getattr(img, "quantization", None) or {}
            if tables:
                quantisation = float(np.mean(tables[min(tables)]))
    except OSError:
        pass
    return Facts(width * height, quantisation, digest)


def margin_is_frame(image, box) -> bool:
    """Whether everything of ``image`` outside ``box`` (fractions) is a uniform frame, strip by strip."""
    from ..views import _sampled

    arr, _ = _sampled(image)
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = box
    inset = FRAME_INSET
    strips = [arr[: int((y0 - inset) * h)], arr[int(np.ceil((y1 + inset) * h)) :],
              arr[:, : int((x0 - inset) * w)], arr[:, int(np.ceil((x1 + inset) * w)) :]]
    sides = [y0, 1 - y1, x0, 1 - x1]
    found = False
    for strip, side in zip(strips, sides):
        if side < FRAME_MIN_SIDE or strip.size == 0:
            continue
        pixels = strip.reshape(-1, 3)
        close = (np.abs(pixels - np.median(pixels, axis=0)) <= FRAME_TOLERANCE).all(axis=1)
        if close.mean() < FRAME_SHARE:
            return False
        found = True
    return found


Framed = dict  # (member id, box as a tuple) -> whether the member's margin outside that box is a frame


def frame_checks(relations: dict, paths: dict[str, str]) -> Framed:
    """For each relation where one member shows part of the other, whether the larger one's margin outside that
    part is a frame (read from its file)."""
    from ..errors import ImageError
    from ..features import load_image

    wanted = set()
    for (query, stored), evidence in relations.items():
        if evidence is None or not evidence.is_geometric:
            continue
        wanted.add((query, tuple(evidence.original_in_copy)))
        wanted.add((stored, tuple(evidence.original_region)))
    images, out = {}, {}
    for member, box in sorted(wanted):
        if member not in images:
            try:
                images[member] = load_image(paths[member]).image
            except ImageError:
                images[member] = None
        out[(member, box)] = images[member] is not None and margin_is_frame(images[member], box)
    return out


def edit_direction(evidence: Evidence | None, query_framed: bool, stored_framed: bool) -> int:
    """From the verdict on (query as copy of stored): +1 when the stored file is the source of the query (the
    query is a crop, a downscale or a framed version of it), -1 the other way round, 0 when it does not say.

    "One shows part of the other" reads two ways (a crop of it, or it framed): the larger one is the framed copy
    when its margin outside the part the smaller one shows is a frame (``query_framed``: the query's, outside the
    original; ``stored_framed``: the stored picture's, outside the part the query shows); otherwise the smaller
    one is the crop. When the framed one is also the larger picture of the two (the other one downscaled), no
    direction holds: the pixel rule decides, counting the framed one's picture alone.
    """
    if evidence is None or not evidence.is_geometric:
        return 0
    shown, covered, scale = evidence.original_shown, evidence.copy_covered, evidence.scale
    low = 1 - EDIT_MARGIN
    if shown < low <= covered:  # the query shows part of the stored picture
        if not stored_framed:
            return 1  # the query is a crop of it
        return 0 if scale < low else -1  # the stored picture is the query framed (unless the query is smaller)
    if covered < low <= shown:  # the stored picture sits inside the query
        if not query_framed:
            return -1  # the stored picture is a crop of the query
        return 0 if scale > 1 / low else 1  # the query is the stored picture framed (unless it is smaller)
    if shown >= low and covered >= low:
        if scale < low:
            return 1  # the query is the stored picture made smaller
        if scale > 1 / low:
            return -1
    return 0


def choose_original(members: list[Member], relations: dict, facts: dict[str, Facts],
                    framed: Framed | None = None) -> tuple[Member, str, str]:
    """(original, rule, reason). ``relations``: (query id, stored id) -> evidence of query as a copy of stored;
    ``framed``: ``frame_checks`` for them (none known: no frames)."""
    framed = framed or {}
    facts = _without_frames(relations, facts, framed)
    candidates, decided = _edited_from(members, relations, framed)
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
    if len({facts[m.id].digest for m in candidates}) == 1 and facts[earliest.id].digest:
        return earliest, RULES[3], (f"identical files (the same bytes): no rule can tell them apart; listed "
                                    f"first: the one modified first ({when})")
    return earliest, RULES[3], f"no edit or quality sets them apart; modified first ({when})"


def _without_frames(relations: dict, facts: dict[str, Facts], framed: Framed) -> dict[str, Facts]:
    """Each member's pixels less a frame the evidence confirmed: the share of it the other member's picture
    covers, where the rest is a frame."""
    pixels = {member: f.pixels for member, f in facts.items()}
    for (query, stored), evidence in relations.items():
        if evidence is None or not evidence.is_geometric:
            continue
        if framed.get((query, tuple(evidence.original_in_copy))):
            pixels[query] = min(pixels[query], round(facts[query].pixels * evidence.copy_covered))
        if framed.get((stored, tuple(evidence.original_region))):
            pixels[stored] = min(pixels[stored], round(facts[stored].pixels * evidence.original_shown))
    return {member: replace(f, pixels=pixels[member]) for member, f in facts.items()}


def _edited_from(members: list[Member], relations: dict, framed: Framed) -> tuple[list[Member], bool]:
    """Rule 1: the members no other is an edit of (all when the evidence says nothing), and whether that is one
    member that the others were made from."""
    beaten: dict[str, str] = {}
    for (query, stored), evidence in relations.items():
        if evidence is None or not evidence.is_geometric:
            continue
        direction = edit_direction(evidence, framed.get((query, tuple(evidence.original_in_copy)), False),
                                   framed.get((stored, tuple(evidence.original_region)), False))
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
    framed = frame_checks(relations, {m.id: m.path for m in members})
    original, rule, reason = choose_original(members, relations, facts, framed)
    copies = []
    for m in members:
        if m.id == original.id:
            continue
        judgement = verdict_of(m.id, original.id)
        evidence = judgement.evidence if judgement.is_copy else Evidence(THROUGH_COPIES)
        copies.append(Copy(m, float(np.dot(vectors[m.id], vectors[original.id])), evidence))
    copies.sort(key=lambda c: -c.similarity)
    return Group(original, copies, rule, reason)
