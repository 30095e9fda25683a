"""The README's main-job command: `imgsearch demo` finds the original of an edited copy at rank 1, as a copy."""

from __future__ import annotations

from helpers import run_cli


def test_demo_finds_the_original_at_rank_1_as_a_copy(vgg_weights, tmp_path):
    result = run_cli("demo", "--dir", tmp_path, weights=vgg_weights)
    assert result.exit_code == 0, result.output
    assert "The original, coffee.jpg, is at rank 1, as a copy." in result.stdout
    # With its evidence: the copy's black border is the frame the original sits in.
    assert "rank 1 is a copy: the original fills" in result.stdout and "framed" in result.stdout
    assert "indexed 15 photos" in result.stderr
    assert (tmp_path / "demo.db").is_dir() and len(list((tmp_path / "photos").iterdir())) == 15
