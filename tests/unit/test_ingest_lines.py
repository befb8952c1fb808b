"""``motcua ingest`` reads its file a block at a time: the same lines as reading it whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.contract.actions import ACTION_MAX_BYTES
from motcua import ingest as I
from motcua.cli.ingest import _lines_in

BOM = b"\xef\xbb\xbf"


def whole(data: bytes) -> list[bytes]:
    """The lines as reading the file whole gives them (the reference), a line too long to be
    an action cut to one byte over the limit."""
    return [line.rstrip(b"\r")[:ACTION_MAX_BYTES + 1]
            for line in data.removeprefix(BOM).split(b"\n") if line.strip()]


@given(st.lists(st.sampled_from([b"{}", b'{"a":1}', b"", b"  ", b"\r", b"x" * 9, b"\xc3\xa9"]),
                max_size=40),
       st.booleans(), st.booleans(), st.integers(1, 16))
def test_block_by_block_the_lines_are_those_of_the_whole_file(
        parts: list[bytes], bom: bool, trailing: bool, block: int) -> None:
    """Any cut of the file into blocks (1 to 16 bytes here): blank lines dropped, CRLF's CR
    taken off, a byte-order mark before the first line not part of it, a last line without
    its newline kept."""
    data = (BOM if bom else b"") + b"\n".join(parts) + (b"\n" if trailing else b"")
    old, I.BLOCK = I.BLOCK, block
    try:
        got = list(I.iter_lines(io.BytesIO(data), Path("f.ndjson")))
    finally:
        I.BLOCK = old
    assert got == whole(data)


def test_a_line_too_long_to_be_an_action_is_held_cut_and_the_next_ones_come() -> None:
    """A line of 5 MiB (or a device without newlines) is never held whole: it comes cut to
    one byte over the limit, and is refused as too_large by its length."""
    data = b"{}\n" + b"x" * (5 << 20) + b"\n{}\n"
    got = list(I.iter_lines(io.BytesIO(data), Path("f.ndjson")))
    assert [len(x) for x in got] == [2, ACTION_MAX_BYTES + 1, 2]


@pytest.mark.parametrize("data, n", [(b"", 0), (b"a\nb\n", 2), (b"a\nb", 2), (b"\n\n", 2)])
def test_the_progress_total_counts_the_lines_of_a_file(tmp_path: Path, data: bytes,
                                                      n: int) -> None:
    path = tmp_path / "f.ndjson"
    path.write_bytes(data)
    assert _lines_in(path) == n
    assert _lines_in(Path("-")) == 0
