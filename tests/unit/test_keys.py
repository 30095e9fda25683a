"""indexing.check_key, directly: which caller keys are taken (PUT /api/images/{key}) and which are refused."""

from __future__ import annotations

import pytest

from imgsearch.indexing import MAX_KEY, InvalidKey, check_key


@pytest.mark.parametrize("key", [
    "IMG_0001.jpg",
    "s3://bucket/users/alice/IMG_0001.jpg",
    "https://cdn.example.com/a/b.png",
    "0",
    "user@example.com:photos/2024/x+y=z,1!%20~-",
    "a" * MAX_KEY,
])
def test_keys_that_are_taken(key):
    assert check_key(key) == key


@pytest.mark.parametrize(("key", "reason"), [
    ("", "1 to 1024 characters"),
    ("a" * (MAX_KEY + 1), "1 to 1024 characters"),
    ("/etc/passwd", "start with a letter or digit"),  # would look like a local file's path
    ("~root/.ssh/id_rsa", "start with a letter or digit"),
    ("../etc/passwd", "start with a letter or digit"),
    (".hidden", "start with a letter or digit"),
    ("-rf", "start with a letter or digit"),
    ("a b", "not allowed"),
    ("k\n", "not allowed"),
    ("a\\b", "not allowed"),
    ("name?query", "not allowed"),
    ("café", "not allowed"),
])
def test_keys_that_are_refused_say_why(key, reason):
    with pytest.raises(InvalidKey, match=reason):
        check_key(key)
