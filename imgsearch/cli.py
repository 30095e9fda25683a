"""The command line: a thin click layer over the library modules. Heavy imports stay inside commands."""

import functools
import json
import sys

import click

from .errors import ImgsearchError

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


# --- check-cpu / size (planning commands; import nothing heavy) ---------------------------------

