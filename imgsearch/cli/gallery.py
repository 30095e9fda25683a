"""index, search, stats, extract, demo: the main path's commands."""

import sys

import click

from ..errors import StoreError
from .base import (
    EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, _ProgressBar, cli, console, err_line, json_option, open_collection, print_json,
    connect, EXIT_INTERRUPTED,
)
from .options import feature_options, index_options, page_options, precision_option, store_options

def run_index(paths, uri, collection, embedder_cls, options, owner, batch_size, prune, hidden, as_json):
    from ..indexing import index_paths
    from .interrupt import stop_on_signals

    store, coll, embedder = open_collection(uri, collection, embedder_cls, create=True, **options)
    with store, stop_on_signals() as stop, _ProgressBar("Indexing") as progress:
        summary = index_paths(
            coll, embedder, paths, owner=owner, batch_size=batch_size, prune=prune, include_hidden=hidden,
            progress=progress, stop=stop,
        )
        total = coll.count()
    if as_json:
        # VGG16 only: the precision its model ran in (None when every file was unchanged)
        precision = {"precision": embedder.precision_used} if hasattr(embedder, "precision_used") else {}
        print_json({**summary.as_dict(), "rows": total, "collection": coll.name, "uri": store.uri, **precision})
    else:
        for path, reason in summary.failed:
            err_line(f"failed: {path}: {reason}")
        from rich.table import Table

        table = Table(title=f"Indexed into {coll.name!r} ({total:,} rows)", title_justify="left")
        for name in ("new", "updated", "unchanged", "pruned", "not images", "failed"):
            table.add_column(name, justify="right")
        table.add_row(
            *map(str, (summary.new, summary.updated, summary.unchanged, summary.pruned, summary.not_images)),
            f"[red]{len(summary.failed)}[/]" if summary.failed else "0",
        )
        console().print(table)
    if summary.interrupted:
        err_line("interrupted: every file above is written; run the same command again to index the rest")
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_PARTIAL


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@store_options
@feature_options
@index_options
@json_option
def index(paths, uri, collection, weights, pooling, resize, border_tolerance, precision, owner, batch_size, prune,
          hidden, as_json):
    """Index the images under PATH... (recursively), incrementally.

    Unchanged files (same path, size and mtime) are skipped without decoding; changed ones are re-embedded
    and replace their row. Exit 0: all good; 1: some files failed (listed); 2: nothing could be done.
    """
    from ..features import VGG16Features

    options = dict(weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance,
                   precision=precision)
    sys.exit(run_index(paths, uri, collection or "images", VGG16Features, options, owner, batch_size, prune, hidden,
                       as_json))


# Repeated from imgsearch.search so that --help imports no numpy; tests/test_search.py keeps them equal.
_DEFAULT_THRESHOLD = 0.80


def read_queries(queries):
    """QUERY arguments as sources: '-' reads image bytes from standard input."""
    sources = []
    for query in queries:
        if query == "-":
            with click.open_file("-", "rb") as stdin:
                sources.append((stdin.read(), "-"))
        else:
            sources.append(query)
    return sources


def embedded_images(embedder, images, batch_size, as_json, failures: list):
    """Yield the IMAGE arguments that embed; name each failure on stderr (and as a JSON line) and go on."""
    for batch in embedder.embed_sources(read_queries(images), batch_size=batch_size):
        for result in batch:
            if result.error is None:
                yield result
                continue
            failures.append(result)
            err_line(f"failed: {result.source}: {result.error}")
            if as_json:
                print_json({"path": result.source, "error": result.error})


def print_results(result, show_distance_as_int=False):
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if result.error:
        err_line(f"query failed: {result.query}: {result.error}")
        return
    verdicts = any(m.match is not None for m in result.results)
    copies = sum(m.match == "copy" for m in result.results)
    title = f"{escape(result.query)}: page {result.page}, {len(result.results)} result(s)"
    if verdicts:
        title += f", {copies} cop{'y' if copies == 1 else 'ies'}"
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    if verdicts:
        table.add_column("match")
    table.add_column("distance" if show_distance_as_int else "similarity", justify="right")
    table.add_column("path", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("owner")
    for m in result.results:
        score = f"{m.distance:.0f}" if show_distance_as_int else f"{m.similarity:.4f}"
        row = [str(m.rank)]
        if verdicts:
            row.append("[bold green]copy[/]" if m.match == "copy" else "similar")
        row += [score, escape(m.path), f"{m.size:,}", escape(m.owner)]
        table.add_row(*row)
    out.print(table)
    for m in result.results:
        if m.evidence:  # under the table, where a long sentence reads better than in a folded column
            out.print(f"  rank {m.rank} is a copy: {escape(m.evidence.summary)}", highlight=False)


def run_search(queries, uri, collection, embedder_cls, model_options: dict, search_options, as_json):
    from ..search import search_images

    sources = read_queries(queries)
    store, coll, embedder = open_collection(uri, collection, embedder_cls, create=False, **model_options)
    failed = 0
    with store:
        for result in search_images(coll, embedder, sources, search_options):
            failed += bool(result.error)
            if as_json:
                print_json(result.as_dict())
            else:
                print_results(result, show_distance_as_int=coll.binary)
    return EXIT_OK if not failed else EXIT_PARTIAL


@cli.command()
@click.argument("queries", nargs=-1, required=True)
@store_options
@feature_options
@page_options
@click.option(
    "--threshold",
    type=click.FloatRange(-1, 1),
    default=_DEFAULT_THRESHOLD,
    show_default=True,
    help="Keep only similar hits with similarity >= this; -1 lists every rank. Copies are shown whatever "
    "their similarity.",
)
@click.option("--copies-only", is_flag=True, help="Only the copies (the same picture, edited), with their evidence.")
@click.option(
    "--verdict/--no-verdict",
    default=True,
    show_default=True,
    help="Check the nearest images for copies (local features); --no-verdict ranks by similarity alone.",
)
@json_option
def search(queries, uri, collection, weights, pooling, resize, border_tolerance, precision, top_k, page, owner,
           threshold, copies_only, verdict, as_json):
    """Find the originals and look-alikes of QUERY: an image file, a folder of images, or - (image bytes on stdin).

    Each hit is a "copy" (the same picture, edited: recompressed, resized, cropped, framed, turned, mirrored,
    pasted into a page), with its evidence, or "similar". Copies come first on page 1; the similar images
    follow by similarity (the cosine similarity of the VGG16 vectors), down to --threshold. Page P holds ranks
    (P-1)*K+1 to P*K of the similar images. --json prints one JSON object per query per line.
    Exit 0: all queries ran; 1: some query images failed; 2: nothing could be done.
    """
    from ..features import VGG16Features
    from ..search import SearchOptions

    model_options = dict(weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance,
                         precision=precision)
    search_options = SearchOptions(top_k=top_k, page=page, owner=owner, threshold=threshold,
                                   copies_only=copies_only, verify=verdict)
    sys.exit(run_search(queries, uri, collection or "images", VGG16Features, model_options, search_options, as_json))


@cli.command()
@store_options
@json_option
def stats(uri, collection, as_json):
    """Rows, model, dimension and owners of a collection, and where it is stored."""
    with connect(uri) as store:
        names = [collection] if collection else store.collection_names()
        report = []
        for name in names:
            config = store.stored_config(name)
            if config is None:
                raise StoreError(f"no collection {name!r} at {store.uri}")
            coll = store.collection(name, config, create=False)
            report.append({"collection": name, "rows": coll.count(), "config": config, "owners": coll.owners()})
        location = store.uri
    if as_json:
        print_json({"uri": location, "collections": report})
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"imgsearch collections at {escape(location)}", title_justify="left")
    for column in ("collection", "rows", "model", "dim", "settings", "owners"):
        table.add_column(column, justify="right" if column in ("rows", "dim") else "left")
    for r in report:
        config = dict(r["config"])
        model, dim = config.pop("model"), config.pop("dim")
        owners = ", ".join(f"{escape(o or '(none)')}: {n:,}" for o, n in sorted(r["owners"].items()))
        settings = ", ".join(f"{k}={v}" for k, v in sorted(config.items()))
        table.add_row(r["collection"], f"{r['rows']:,}", model, str(dim), settings, owners)
    console().print(table)


@cli.command()
@click.argument("images", nargs=-1, required=True)
@feature_options
@click.option("--npy", type=click.Path(dir_okay=False), help="Write an (n, 512) float32 array here (+ OUT.paths.txt).")
@click.option("--batch-size", type=click.IntRange(1, 512), default=16, show_default=True)
@json_option
def extract(images, weights, pooling, resize, border_tolerance, precision, npy, batch_size, as_json):
    """Print the 512-d VGG16 vectors of IMAGE... (- reads image bytes from stdin).

    Exit 0: all extracted; 1: some images failed (named on stderr); 2: nothing could be done.
    """
    import numpy as np

    from ..features import VGG16Features

    embedder = VGG16Features.for_collection(
        None, weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance, precision=precision
    )
    embedder.progress = err_line
    done, failed = [], []
    for result in embedded_images(embedder, images, batch_size, as_json, failed):
        done.append(result)
        if as_json:
            print_json(
                {"path": result.source, "width": result.width, "height": result.height,
                 "vector": [round(float(x), 7) for x in result.vector]}
            )
    if npy and done:
        np.save(npy, np.stack([r.vector for r in done]).astype(np.float32))
        with open(npy + ".paths.txt", "w", encoding="utf-8") as f:
            f.writelines(r.source + "\n" for r in done)
        err_line(f"wrote {len(done)} vectors to {npy} and their paths to {npy}.paths.txt")
    if not as_json:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"VGG16 vectors ({embedder.dim}-d, {embedder.pooling} pooling)", title_justify="left")
        for column in ("image", "size", "norm", "first values"):
            table.add_column(column, overflow="fold")
        for r in done:
            first = " ".join(f"{x:.4f}" for x in r.vector[:6])
            table.add_row(escape(r.source), f"{r.width}x{r.height}", f"{np.linalg.norm(r.vector):.4f}", first)
        console().print(table)
    raise SystemExit(EXIT_OK if not failed else EXIT_PARTIAL if done else EXIT_FATAL)


@cli.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    help="Keep the demo's photos, query and database here (default: a temporary folder, removed afterwards).",
)
@click.option("--weights", envvar="IMGSEARCH_WEIGHTS", type=click.Path(dir_okay=False), help="VGG16 weights file.")
@precision_option
def demo(workdir, weights, precision):
    """The main job on real photos, with nothing of yours: index, then search with an edited copy.

    Writes 15 photos bundled with scikit-image to a folder, indexes them into a new embedded Milvus Lite
    database, adds a 10% black border to one and recompresses it as a JPEG of quality 40, and searches
    with that copy: the original comes back at rank 1, as a copy. Exit 0 if it does, 1 if not.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from .. import demo as demo_photos
    from ..features import VGG16Features
    from ..indexing import index_paths
    from ..search import SearchOptions, search_images
    from ..verdict import COPY

    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="imgsearch-demo-"))
    try:
        photos = folder / "photos"
        demo_photos.write_sample_photos(photos)
        original = photos / f"{demo_photos.QUERY_PHOTO}.jpg"
        query = demo_photos.write_edited_copy(original, folder / f"{demo_photos.QUERY_PHOTO}-border-jpeg40.jpg")
        uri = str(folder / "demo.db")
        err_line(f"$ imgsearch index {photos} --uri {uri}")
        store, coll, embedder = open_collection(uri, "images", VGG16Features, create=True, weights=weights,
                                               precision=precision)
        with store:
            with _ProgressBar("Indexing") as progress:
                summary = index_paths(coll, embedder, [photos], progress=progress)
            err_line(f"indexed {summary.new} photos")
            err_line(f"$ imgsearch search {query} --uri {uri} --top-k 5 --threshold -1")
            (result,) = search_images(coll, embedder, [query], SearchOptions(top_k=5))
        print_results(result)
    finally:
        if not workdir:
            shutil.rmtree(folder, ignore_errors=True)
    top = result.results[0] if result.results else None
    found = top is not None and top.path == str(original) and top.match == COPY
    if found:
        console().print(f"[green]The original, {original.name}, is at rank 1, as a copy.[/]")
    else:
        console().print(f"[red]The original, {original.name}, is not at rank 1 as a copy.[/]")
    sys.exit(EXIT_OK if found else EXIT_PARTIAL)

