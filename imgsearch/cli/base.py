"""The CLI's frame: the click group, exit codes, error handling, JSON and table output, progress, connecting."""

import json
import logging
import sys

import click

from ..errors import ImgsearchError

# Exit codes, documented in docs/indexing-and-search.md (output, errors and exit codes).
EXIT_OK = 0
EXIT_PARTIAL = 1  # the job ran but some inputs failed (or check-cpu: no AVX2)
EXIT_FATAL = 2  # nothing done: bad usage, unreachable store, missing weights, cannot tell
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM; everything written so far is kept


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
            sys.exit(EXIT_INTERRUPTED)
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


def main():
    """The console script: the command, then a quick exit (a traceback from a bug still ends Python's usual way)."""
    try:
        cli.main(prog_name="imgsearch")
        code = EXIT_OK
    except SystemExit as e:
        code = e.code
    exit_quickly(code)


def exit_quickly(code):
    """Leave without freeing every module's objects one by one. Once a command has returned, its store is closed
    (Milvus Lite closes its database before release returns) and its output written; what Python would still do
    is free pandas', pyarrow's, gRPC's and ONNX Runtime's objects: 0.3-0.4 s of a one-shot search's 1.8 s
    (benchmarks/startup.py). Threads still running are waited for and exit handlers run, as at a normal exit."""
    import atexit
    import os
    import threading

    if code is None:
        code = EXIT_OK
    elif not isinstance(code, int):  # sys.exit("message"): printed, and status 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            pass
    shutdown = getattr(threading, "_shutdown", None)  # what Python runs first at exit: joins non-daemon threads
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()  # CPython's own runner of the atexit handlers (e.g. Milvus Lite's release_all)
    os._exit(code)


def connect(uri):
    """A Store, with the libraries' own logging hushed: we report their failures ourselves, in one line."""
    import os

    # gRPC's C core prints its own lines (e.g. keepalive GOAWAYs on a busy machine, which it then retries);
    # it reads this once, when grpc is first imported. A user who sets it keeps their own.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import pymilvus  # noqa: F401  (it configures its loggers when imported: set them after that)

    from ..store import Store

    for name in ("milvus_lite", "pymilvus", "pymilvus.milvus_client", "grpc"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Store(uri)



def open_collection(uri, collection, embedder_cls, create, **options):
    """Connect, then pick the embedder the collection was made with (options may override). The model starts
    loading first, in the background, so that opening the store and loading it overlap."""
    if hasattr(embedder_cls, "preload"):
        embedder_cls.preload(**options)
    store = connect(uri)
    try:
        stored = store.stored_config(collection)
        embedder = embedder_cls.for_collection(stored, **options)
        if hasattr(embedder, "progress"):
            embedder.progress = err_line
        return store, store.collection(collection, embedder.config(), create=create), embedder
    except BaseException:
        store.close()
        if hasattr(embedder_cls, "forget_preload"):
            embedder_cls.forget_preload(**options)
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

    def __call__(self, done: int, total: int, phase: str | None = None):
        """``phase``: a step of a longer job (e.g. duplicates' "reading vectors"); each has its own bar and ETA."""
        if self.bar is not None:
            task = self.bar.tasks[0]
            if phase is not None and phase != task.description:
                self.bar.reset(self.task, total=total, completed=done, description=phase)
            elapsed = task.elapsed or 0
            if phase is not None:  # a resumed phase starts part done: the recent speed, not done / elapsed
                rate = f"{task.speed:,.0f}/s" if task.speed else ""
            else:
                rate = f"{done / elapsed:.1f} images/s" if elapsed > 1 and done else ""
            self.bar.update(self.task, completed=done, total=total, rate=rate)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
