"""Files named on the command line: every way one cannot be taken is one sentence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from motcua.userfiles import UserFileError, read_user_file


def test_a_file_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    path.write_bytes(b"x" * 100)
    assert read_user_file(path, "an NDJSON file", 100) == b"x" * 100


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "none.json", "does not exist"),
    (lambda d: d, "is a directory, not a JSON file"),
    (lambda d: (d / "big.json").write_bytes(b"1" * 101) and d / "big.json",
     "is larger than 100 bytes, the most a JSON file may be"),
    # A device that never ends: refused at the limit, not read until memory runs out.
    (lambda d: Path(os.devnull).with_name("zero"), "is larger than"),
])
def test_what_cannot_be_taken_is_one_sentence_naming_the_file(
        tmp_path: Path, make: object, says: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UserFileError) as e:
        read_user_file(path, "a JSON file", 100)
    message = str(e.value)
    assert says in message and repr(str(path)) in message and "\n" not in message
