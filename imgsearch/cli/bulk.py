"""bulk extract, bulk import: billions of images, as an Apache Spark job and Milvus's bulk import."""

import sys

import click

from .base import EXIT_OK, EXIT_PARTIAL, _ProgressBar, cli, connect, console, err_line, json_option, print_json
from .options import feature_options, store_options


@cli.group()
def bulk():
    """Billions of images: extract on Apache Spark into Parquet shards, then bulk-import them into Milvus.

    `imgsearch bulk extract` makes the same rows as `imgsearch index`, as a job on a Spark cluster (or all
    cores of this machine); `imgsearch bulk import` loads them into a Milvus collection.
    """


@bulk.command("extract")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--paths-from", "paths_file", type=click.Path(dir_okay=False),
              help="A file of image paths, one per line, readable by every worker (instead of or with PATH).")
# The old spelling: "manifest" names only the job's manifest.json now.
@click.option("--manifest", "old_paths_file", type=click.Path(dir_okay=False), hidden=True)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the shards and manifest.json; on a cluster, one the driver and every worker see.")
@click.option("--master", default=None,
              help="Spark master: local[*] (default: all cores of this machine), local[N], spark://host:7077, yarn, "
                   "k8s://...")
@click.option("--shard-size", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="Images per shard (one Spark task, one Parquet file).")
@click.option("--batch-size", type=click.IntRange(1, 512), default=16, show_default=True, help="Images per batch.")
@click.option("--owner", default="", help="Owner recorded with each image (for --owner searches).")
@click.option("--hidden", is_flag=True, help="Include hidden files and folders.")
@feature_options
@json_option
def extract(paths, paths_file, old_paths_file, out, master, shard_size, batch_size, owner, hidden, weights, pooling,
            resize, border_tolerance, precision, as_json):
    """Embed the images under PATH... (and/or listed in --paths-from) into Parquet shards in --out, as a Spark job.

    The rows are those `imgsearch index` makes, in Milvus's import format, with manifest.json (counts,
    failures, the collection settings). Running it again skips the finished shards. Exit 0: all extracted;
    1: some images failed (listed in the manifest); 2: nothing could be done.
    """
    from .. import bulk as bulk_lib
    from ..errors import BulkError

    paths_file = paths_file or old_paths_file
    if not paths and not paths_file:
        raise BulkError("give folders or files to extract, or --paths-from FILE")
    # Each worker resolves --precision auto on its own CPU (a cluster's machines may differ); vectors of either
    # precision belong to the same collection.
    options = dict(weights=weights, pooling=pooling, resize=resize, border_tolerance=border_tolerance,
                   precision=precision)
    with _ProgressBar("Extracting") as progress:
        manifest = bulk_lib.extract(
            paths, out, paths_file=paths_file, options=options, owner=owner, shard_size=shard_size,
            batch_size=batch_size, master=master, include_hidden=hidden, progress=progress, log=err_line,
        )
    if as_json:
        print_json({**manifest, "out": str(out)})
    else:
        for failure in manifest["failures"]:
            err_line(f"failed: {failure['path']}: {failure['reason']}")
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"Extracted into {escape(str(out))}", title_justify="left")
        for name in ("shards", "files", "rows", "not images", "failed"):
            table.add_column(name, justify="right")
        table.add_row(
            *(f"{n:,}" for n in (len(manifest["shards"]), manifest["files"], manifest["rows"], manifest["not_images"])),
            f"[red]{manifest['failed']}[/]" if manifest["failed"] else "0",
        )
        console().print(table)
    sys.exit(EXIT_PARTIAL if manifest["failed"] else EXIT_OK)


@bulk.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@store_options
@click.option("--server-dir", default=None,
              help="Where the Milvus server sees DIRECTORY (a path in its storage); default: the same absolute path, "
                   "right for a standalone server with local storage on this machine.")
@json_option
def import_(directory, uri, collection, server_dir, as_json):
    """Load the shards of `imgsearch bulk extract` into a collection, with the server's bulk import.

    Creates the collection if needed (same settings checks as `imgsearch index`). Rows already stored are left
    out, so importing twice adds nothing. Milvus Lite (or a server that refuses the files) gets batched upserts
    instead, and the output says so. Exit 0: done; 2: nothing could be done.
    """
    from ..bulk_import import import_shards

    with connect(uri) as store, _ProgressBar("Importing") as progress:
        summary = import_shards(store, collection or "images", directory, server_dir=server_dir, progress=progress,
                                log=err_line)
        location = store.uri
    if summary.reason:
        err_line(f"loaded with batched upserts: {summary.reason}")
    if as_json:
        print_json({**summary.as_dict(), "collection": collection or "images", "uri": location})
        return
    from rich.table import Table

    table = Table(title=f"Imported into {collection or 'images'!r} by {summary.method} "
                        f"({summary.rows_after:,} rows)", title_justify="left")
    for name in ("shards", "skipped", "new rows", "already stored", "rows before", "rows after"):
        table.add_column(name, justify="right")
    table.add_row(*(f"{n:,}" for n in (summary.shards, summary.shards_skipped, summary.rows_new, summary.rows_present,
                                       summary.rows_before, summary.rows_after)))
    console().print(table)
