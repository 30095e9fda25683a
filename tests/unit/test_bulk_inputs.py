"""bulk extract's inputs: folders walked and a list of paths (--paths-from), each file once; the old --manifest
spelling of that option still works."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imgsearch.bulk import gather_inputs
from imgsearch.cli import cli
from imgsearch.errors import BulkError


def test_folders_and_a_list_of_paths_give_each_file_once_in_order(tmp_path):
    (tmp_path / "photos").mkdir()
    for name in ("b.jpg", "a.jpg"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    listed = tmp_path / "paths.txt"
    listed.write_text(f"{tmp_path / 'elsewhere.jpg'}\n\n{tmp_path / 'photos' / 'a.jpg'}\r\n")
    found, errors = gather_inputs([tmp_path / "photos"], str(listed), include_hidden=False)
    assert found == [str(tmp_path / "photos" / "a.jpg"), str(tmp_path / "photos" / "b.jpg"),
                     str(tmp_path / "elsewhere.jpg")]
    assert errors == []


def test_an_unreadable_list_is_named(tmp_path):
    with pytest.raises(BulkError, match="cannot read the list of paths .*missing.txt"):
        gather_inputs([], str(tmp_path / "missing.txt"), include_hidden=False)


@pytest.mark.parametrize("option", ["--paths-from", "--manifest"])
def test_both_spellings_reach_the_list(tmp_path, option):
    result = CliRunner().invoke(cli, ["bulk", "extract", option, str(tmp_path / "missing.txt"), "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2 and "cannot read the list of paths" in result.output, result.output
