"""The docs hold together: links resolve, the README's commands exist, RESULTS.md has each heading once.

Fast: no model, no Milvus. Links are checked as GitHub renders them: relative paths from the file's folder, and
`#anchors` against the target's headings under GitHub's slug rules (lower case; punctuation other than `-` and `_`
dropped; spaces become `-`; a repeated slug gets `-1`, `-2`...).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgsearch.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
CHECKED = [README, RESULTS, *DOCS]

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def headings(path: Path) -> list[str]:
    return [m.group(2) for _, line in prose_lines(path) if (m := HEADING.match(line))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text, lower-cased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    kept = (ch for ch in text
            if ch.isalnum() or ch in "-_ " or unicodedata.category(ch) in ("Mn", "Mc", "Me", "Pc"))
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(path):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    out = []
    for number, line in prose_lines(path):
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            out.append((number, target))
    return out


def broken_links(path: Path) -> list[str]:
    broken = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where} (no heading with that anchor in {dest.relative_to(ROOT)})")
    return broken


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_links_are_found():
    # guards the checks above against a link pattern that silently matches nothing
    targets = [target for _, target in relative_links(README)]
    assert "docs/serve-page.png" in targets and "benchmarks/RESULTS.md#verdict" in targets, targets
    assert sum(len(relative_links(p)) for p in CHECKED) > 50


def test_slug_follows_github():
    assert slug("Planning: `imgsearch size`") == "planning-imgsearch-size"
    assert slug("Several processes, one machine: `milvus-lite server`") == "several-processes-one-machine-milvus-lite-server"
    assert slug("search_latency") == "search_latency"
    assert slug("Copy or similar: the verdict") == "copy-or-similar-the-verdict"
    assert slug("**All** edits (1,050)") == "all-edits-1050"


def readme_commands() -> list[list[str]]:
    """The command words of each entry in the README's command table, e.g. ["bulk", "extract"]."""
    lines = [line for _, line in prose_lines(README)]
    start = next(i for i, line in enumerate(lines) if re.match(r"^\|\s*command\s*\|", line))
    commands: list[list[str]] = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cell = line.split("|")[1]
        for span in re.findall(r"`([^`]*)`", cell):
            tokens = span.split()
            if tokens and tokens[0] == "imgsearch":
                words, tokens = [], tokens[1:]
            else:  # "/ `search QUERY...`": a sibling of the previous command in its group
                words = commands[-1][:-1] if commands else []
            for token in tokens:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", token):
                    break
                words = [*words, token]
            commands.append(words)
    return commands


def listed_commands(args: list[str]) -> set[str]:
    """The command names `imgsearch ARGS --help` lists under "Commands:"."""
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    _, _, listing = result.output.partition("\nCommands:\n")
    return {line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line.split()}


def test_readme_command_table_matches_the_cli():
    commands = readme_commands()
    assert len(commands) >= 15, commands
    missing = []
    for words in commands:
        assert words, f"an entry of the README's command table names no command: {commands}"
        for depth, word in enumerate(words):
            if word not in listed_commands(words[:depth]):
                missing.append(" ".join(["imgsearch", *words]))
                break
    assert missing == [], "in the README's command table but not in `imgsearch --help`"


def test_results_has_no_heading_twice():
    seen, repeated = set(), []
    for heading in headings(RESULTS):
        if heading in seen:
            repeated.append(heading)
        seen.add(heading)
    assert repeated == []


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250
