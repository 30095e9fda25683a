"""Option bundles shared by commands, declared apart from what the commands do (as HTTPie does)."""

import click

from ..precision import PRECISIONS  # stdlib only: no TensorFlow at the CLI's start-up


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


def precision_option(fn):
    """The model's numeric precision; not a collection setting (every precision gives interchangeable vectors)."""
    return click.option(
        "--precision",
        envvar="IMGSEARCH_PRECISION",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help="Run the model in int8, bfloat16 or float32 [env IMGSEARCH_PRECISION]. auto: int8 where the CPU has "
        "int8 dot products (VNNI, AMX) or a measurement shows it pays, else bf16 where that is faster, else fp32 "
        "(see `imgsearch check-cpu`).",
    )(fn)


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
    return precision_option(fn)


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

