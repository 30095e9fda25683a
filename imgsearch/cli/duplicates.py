"""duplicates: every group of copies in a collection, its original, reports and safe moves."""

import os
import shlex
import sys

import click

from ..errors import ImgsearchError, StoreError
from .base import (
    EXIT_OK,
    EXIT_PARTIAL,
    _ProgressBar,
    cli,
    connect,
    console,
    err_line,
    json_option,
    print_json,
)
from .options import store_options


def _open(store, name):
    config = store.stored_config(name)
    if config is None:
        raise StoreError(f"no collection {name!r} at {store.uri}: index some images first")
    return store.collection(name, config, create=False)


def _print_group(number, group):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"group {number}: original chosen by {group.rule} ({escape(group.reason)})",
                  title_justify="left")
    for column in ("role", "similarity", "path", "pixels", "relative to the original"):
        table.add_column(column, overflow="fold", justify="right" if column == "similarity" else "left")
    o = group.original
    table.add_row("[bold green]original[/]", "", escape(o.path), f"{o.width}x{o.height}", "")
    for c in group.copies:
        m = c.member
        table.add_row("copy", f"{c.similarity:.4f}", escape(m.path), f"{m.width}x{m.height}",
                      escape(c.evidence.summary if c.evidence else ""))
    console().print(table)


def _undo(journal_path, uri, collection, as_json):
    from ..duplicates import read_journal, undo_moves

    journal = read_journal(journal_path)
    with connect(uri or journal["uri"]) as store:
        result = undo_moves(_open(store, collection or journal["collection"]), journal)
    for path, reason in result.skipped:
        err_line(f"not moved back: {path}: {reason}")
    if as_json:
        print_json({"restored": result.restored, "skipped": [{"path": p, "reason": r} for p, r in result.skipped]})
    else:
        err_line(f"moved {result.restored} file(s) back; their rows have their old paths again")
    return EXIT_OK if not result.skipped else EXIT_PARTIAL


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@store_options
@click.option("--owner", default=None, help="Only this owner's images.")
@json_option
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the groups as CSV here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write an offline contact sheet here (thumbnails, evidence, the original marked).")
@click.option("--move-copies-to", "move_to", type=click.Path(file_okay=False),
              help="Move the copies under DIR, keeping their folders; without --yes only print the plan.")
@click.option("--yes", is_flag=True, help="Really move (with --move-copies-to).")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Where an interrupted run's progress is kept, so the next run goes on from it "
              "(default: the user cache dir).")
@click.option("--keep-work", is_flag=True, help="Keep the work files after a finished run too.")
@click.option("--undo", "undo_journal", metavar="JOURNAL", type=click.Path(exists=True, dir_okay=False),
              help="Move back what an earlier --move-copies-to moved (its moves journal, a JSON file it named), "
              "and re-path its rows.")
def duplicates(paths, uri, collection, owner, as_json, csv_path, html_path, move_to, yes, work_dir, keep_work,
               undo_journal):
    """Every group of copies in the collection (optionally only among images under PATH...), with its original.

    A group holds images the copy verdict calls copies of each other (recompressed, resized, cropped, framed,
    turned, mirrored...), never mere look-alikes. The original is chosen by rules in order, and the deciding
    one is named: edited-from (the others are its crops, downscales or framed versions), most-pixels (without
    frames), least-recompressed (JPEG quantisation), earliest-mtime. Nothing is ever deleted.
    An interrupted run (Ctrl-C, a crash) goes on where it stopped when run again with the same options.
    Exit 0: done; 1: some files could not be read (named) or not moved; 2: nothing could be done.
    """
    if undo_journal:
        sys.exit(_undo(undo_journal, uri, collection, as_json))
    if yes and not move_to:
        raise ImgsearchError("--yes goes with --move-copies-to DIR")
    from ..duplicates import find_duplicates, move_copies, plan_moves

    partial = False
    with connect(uri) as store, _ProgressBar("Finding copies") as progress:
        coll = _open(store, collection or "images")
        report = find_duplicates(coll, owner=owner, under=paths, progress=progress, work_dir=work_dir,
                                 keep_work=keep_work)
        for path in report.unreadable:
            err_line(f"not readable here, judged by its vector alone: {path}")
        partial = bool(report.unreadable)
        for number, group in enumerate(report.groups, start=1):
            if as_json:
                print_json(group.as_dict())
            else:
                _print_group(number, group)
        copies = sum(len(g.copies) for g in report.groups)
        err_line(f"{len(report.groups)} group(s), {copies} copies, among {report.rows:,} images "
                 f"({report.pairs_judged:,} pairs checked)")
        if csv_path:
            from ..duplicates.export import write_csv

            write_csv(report.groups, csv_path)
            err_line(f"wrote {csv_path}")
        if html_path:
            from ..duplicates.export import write_html

            write_html(report.groups, html_path)
            err_line(f"wrote {html_path}")
        if move_to:
            moves = plan_moves(report.groups, move_to)
            if not yes:
                for m in moves:
                    err_line(f"would move {m.source} -> {m.target}")
                err_line(f"{len(moves)} file(s) would move; nothing moved (add --yes to move them)")
            elif moves:
                journal = _journal_path(move_to)
                result = move_copies(coll, moves, journal, store.uri)
                for path, reason in result.failed:
                    err_line(f"not moved: {path}: {reason}")
                partial = partial or bool(result.failed)
                err_line(f"moved {result.moved} file(s); moves journal {journal}")
                err_line(f"undo: imgsearch duplicates --undo {shlex.quote(journal)}")
    sys.exit(EXIT_PARTIAL if partial else EXIT_OK)


def _journal_path(folder) -> str:
    """A new moves journal in the destination (never one of an earlier run)."""
    import time

    stem = os.path.join(os.path.abspath(folder), f"imgsearch-duplicates-{time.strftime('%Y%m%d-%H%M%S')}")
    path, n = f"{stem}.json", 1
    while os.path.lexists(path):
        n += 1
        path = f"{stem}-{n}.json"
    return path
