"""Files a user names on the command line: one sentence for each way that fails.

``-`` is standard input. A missing file, a directory, one that cannot be read, and, for a file
read whole, one larger than what its command takes (read up to that size plus a byte: a device
or a pipe that never ends, ``/dev/zero``, is refused at the limit instead of read until memory
runs out). ``motcua ingest`` reads its file a block at a time instead (``motcua.ingest``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kernel.errors import UserError

MIB = 1 << 20


class UserFileError(UserError):
    """A named file that cannot be taken: missing, a directory, unreadable or too large."""


def named(path: Path) -> str:
    """The file as a sentence names it: "File 'x.json'", or "standard input" for ``-``."""
    return "standard input" if str(path) == "-" else f"File {str(path)!r}"


@contextmanager
def open_user_file(path: Path, kind: str) -> Iterator[BinaryIO]:
    """``path`` open for reading (``-``: standard input), a ``kind`` (e.g. "an NDJSON file of
    actions"); a file that cannot be opened is one sentence."""
    if str(path) == "-":
        yield sys.stdin.buffer
        return
    shown = repr(str(path))
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise UserFileError(f"File {shown} does not exist.") from None
    except IsADirectoryError:
        raise UserFileError(f"{shown} is a directory, not {kind}.") from None
    except OSError as e:
        raise UserFileError(f"File {shown} cannot be read: {e.strerror or e}.") from None
    with f:
        yield f


def read_block(f: BinaryIO, path: Path, size: int) -> bytes:
    """Up to ``size`` bytes of an open user file; a read that fails is one sentence."""
    try:
        return f.read(size)
    except OSError as e:
        raise UserFileError(f"{named(path)} cannot be read: {e.strerror or e}.") from None


def read_user_file(path: Path, kind: str, limit: int) -> bytes:
    """The bytes of ``path``, a ``kind`` of at most ``limit`` bytes, read whole."""
    with open_user_file(path, kind) as f:
        data = read_block(f, path, limit + 1)
    if len(data) > limit:
        most = f"{limit // MIB:,} MiB" if limit >= MIB else f"{limit:,} bytes"
        raise UserFileError(f"{named(path)} is larger than {most}, the most {kind} may be "
                            "(split it, or check that it is the file meant).")
    return data
