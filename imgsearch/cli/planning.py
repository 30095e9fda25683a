"""check-cpu and size: planning commands that import nothing heavy."""

import click

from .. import sizing
from .base import EXIT_OK, EXIT_PARTIAL, cli, console, json_option, print_json

@cli.command("check-cpu")
@click.option(
    "--cpuinfo",
    type=click.Path(exists=True, dir_okay=False),
    help="Read a recorded /proc/cpuinfo (e.g. copied from another machine) instead of this CPU.",
)
@json_option
@click.pass_context
def check_cpu(ctx, cpuinfo, as_json):
    """Check the CPU's SIMD instruction sets: Milvus needs AVX2; bfloat16 units speed up the model.

    Reads /proc/cpuinfo on Linux and sysctl on macOS, and shows the precision `--precision auto` picks here, and
    why. Exit 0: Milvus will run (AVX2, or an ARM64 CPU, which has native builds); 1: no AVX2; 2: cannot tell.
    """
    import dataclasses

    from .. import cpu, precision

    flags, source = cpu.read_cpu_flags(cpuinfo)
    report = cpu.assess(flags, source)
    # A probe recorded on this machine settles the cases flags cannot; never measured here (that needs TensorFlow).
    auto, auto_reason = precision.auto_precision(flags, this_machine=cpuinfo is None, measure=False)
    if as_json:
        print_json({**dataclasses.asdict(report), "precision": auto, "precision_reason": auto_reason})
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
        out.print(f"Precision (--precision auto): [bold]{auto}[/]: {escape(auto_reason)}")
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

