"""phash-legacy: the first-generation 64-bit perceptual hash (imgsearch.phash)."""

import sys

import click

from ..errors import ImgsearchError
from .base import EXIT_OK, EXIT_PARTIAL, cli, console, json_option, print_json
from .gallery import embedded_images, run_index, run_search
from .options import index_options, page_options, store_options

# The default is repeated here so that `imgsearch --help` does not import numpy; a test keeps the two equal.
_PHASH_DEFAULT_MAX_DISTANCE = 10


@cli.group("phash-legacy")
def phash_legacy():
    """The legacy 64-bit perceptual hash: imagehash-compatible pHash, compared by Hamming distance.

    A pHash is 16 hex digits (64 bits: the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail against
    their median), split into 8 one-byte segments for the legacy text index. Cheap and exact for copies,
    re-compressions and resizes; not for crops, borders, flips or "the same scene" (use `search`).
    """


@phash_legacy.command("hash")
@click.argument("images", nargs=-1, required=True)
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True, help="Images per batch.")
@json_option
def phash_legacy_hash(images, batch_size, as_json):
    """Print the pHash of IMAGE... (- reads image bytes from stdin) and its 8 one-byte segments.

    --json prints one JSON object per image per line: {"path", "hash", "segments"}, or {"path", "error"}.
    Unreadable files are named on stderr and the others go on.
    Exit 0: all hashed; 1: some images failed.
    """
    from ..phash import PHash, bits_to_hex, segments

    rows, failed = [], []
    for result in embedded_images(PHash(), images, batch_size, as_json, failed):
        digest = bits_to_hex(result.vector)
        if as_json:
            print_json({"path": result.source, "hash": digest, "segments": segments(digest)})
        else:
            rows.append((result.source, digest))
    if not as_json and rows:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="pHash (64-bit, imagehash-compatible)", title_justify="left")
        table.add_column("path", overflow="fold")
        table.add_column("hash", no_wrap=True, min_width=16)
        table.add_column("segments", no_wrap=True)
        for path, digest in rows:
            table.add_row(escape(path), digest, " ".join(segments(digest)))
        console().print(table)
    raise SystemExit(EXIT_PARTIAL if failed else EXIT_OK)


def _phash_operand(arg: str, stdin_used: list) -> tuple[str, str]:
    """(label, hash) of a compare operand: an image file, - (image bytes on stdin) or 16 hex digits."""
    import os
    import re

    from ..phash import HEX_DIGITS, hash_image, is_hash

    if arg == "-":
        if stdin_used:
            raise click.UsageError("only one of A and B can be - (standard input)")
        stdin_used.append(True)
        with click.open_file("-", "rb") as stdin:
            return arg, hash_image((stdin.read(), "-"))
    if not os.path.exists(arg):
        if is_hash(arg):
            return arg, arg.strip().lower()
        if re.fullmatch(r"[0-9a-fA-F]+", arg):
            raise ImgsearchError(f"{arg}: no such file, and not a pHash ({len(arg)} hex digits, expected {HEX_DIGITS})")
    return arg, hash_image(arg)


@phash_legacy.command("compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--max-distance",
    type=click.IntRange(0, 64),
    default=None,
    help="Largest Hamming distance (differing bits of 64) still called similar. "
    f"[default: {_PHASH_DEFAULT_MAX_DISTANCE}]",
)
@json_option
def phash_legacy_compare(a, b, max_distance, as_json):
    """Hamming distance between the pHashes of A and B, and the verdict: similar or different.

    A and B are image files (one of them may be -: image bytes on stdin) or hashes of 16 hex digits, as
    `hash` prints them or legacy data holds them; an existing file wins over a file name that looks like a hash.

    Exit codes follow cmp and diff, so a script can test the verdict directly:

    \b
      0  similar (distance <= --max-distance)
      1  different
      2  trouble: an image could not be read, or bad usage
    """
    from ..phash import DEFAULT_MAX_DISTANCE, hamming

    if max_distance is None:
        max_distance = DEFAULT_MAX_DISTANCE
    stdin_used: list = []
    label_a, hash_a = _phash_operand(a, stdin_used)
    label_b, hash_b = _phash_operand(b, stdin_used)
    distance = hamming(hash_a, hash_b)
    similar = distance <= max_distance
    if as_json:
        print_json(
            {"a": label_a, "b": label_b, "hash_a": hash_a, "hash_b": hash_b, "distance": distance,
             "max_distance": max_distance, "similar": similar}
        )
    else:
        from rich.markup import escape

        out = console()
        out.print(f"{hash_a}  {escape(label_a)}", highlight=False, soft_wrap=True)
        out.print(f"{hash_b}  {escape(label_b)}", highlight=False, soft_wrap=True)
        verdict = "[green]similar[/]" if similar else "[red]different[/]"
        out.print(f"distance {distance} of 64 bits: {verdict} (max distance {max_distance})", highlight=False)
    raise SystemExit(EXIT_OK if similar else EXIT_PARTIAL)


@phash_legacy.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@store_options
@index_options
@json_option
def phash_legacy_index(paths, uri, collection, owner, batch_size, prune, hidden, as_json):
    """Hash the images under PATH... into the phash collection, incrementally (same rules as `imgsearch index`).

    Exit 0: all good; 1: some files failed (listed); 2: nothing could be done.
    """
    from ..phash import PHash

    sys.exit(run_index(paths, uri, collection or "phash", PHash, {}, owner, batch_size, prune, hidden, as_json))


@phash_legacy.command("search")
@click.argument("queries", nargs=-1, required=True)
@store_options
@page_options
@click.option(
    "--max-distance",
    type=click.IntRange(0, 64),
    default=None,
    help=f"Keep only hits at most this many bits away. [default: {_PHASH_DEFAULT_MAX_DISTANCE}]",
)
@json_option
def phash_legacy_search(queries, uri, collection, top_k, page, owner, max_distance, as_json):
    """Find the stored images whose pHash is nearest to QUERY's (a file, a folder, or - for stdin).

    Ranked by Hamming distance (0-64 bits); JSON lines as `imgsearch search`, with distance the Hamming
    distance and similarity 1 - distance/64. Exit 0: all queries ran; 1: some query images failed.
    """
    from ..phash import DEFAULT_MAX_DISTANCE, PHash
    from ..search import SearchOptions

    max_distance = DEFAULT_MAX_DISTANCE if max_distance is None else max_distance
    options = SearchOptions(top_k=top_k, page=page, owner=owner, max_distance=max_distance)
    sys.exit(run_search(queries, uri, collection or "phash", PHash, {}, options, as_json))
