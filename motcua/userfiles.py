"""Files a user names on the command line, read whole: one sentence for each way that fails.

``-`` is standard input. A missing file, a directory, one that cannot be read, and one larger
than what its command takes (read up to that size plus a byte: a device or a pipe that never
ends, ``/dev/zero``, is refused at the limit instead of read until memory runs out)."""

from __future__ import annotations

import sys
from pathlib import Path

from kernel.errors import UserError

MIB = 1 << 20


class UserFileError(UserError):
    """A named file that cannot be taken: missing, a directory, unreadable or too large."""


def read_user_file(path: Path, kind: str, limit: int) -> bytes:
    """The bytes of ``path``, a ``kind`` (e.g. "an NDJSON file of actions") of at most
    ``limit`` bytes."""
    stdin = str(path) == "-"
    shown = "standard input" if stdin else repr(str(path))
    named = shown if stdin else f"File {shown}"
    try:
        if stdin:  # as Unix tools read it
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with path.open("rb") as f:
                data = f.read(limit + 1)
    except FileNotFoundError:
        raise UserFileError(f"File {shown} does not exist.") from None
    except IsADirectoryError:
        raise UserFileError(f"{shown} is a directory, not {kind}.") from None
    except OSError as e:
        raise UserFileError(f"{named} cannot be read: {e.strerror or e}.") from None
    if len(data) > limit:
        most = f"{limit // MIB:,} MiB" if limit >= MIB else f"{limit:,} bytes"
        raise UserFileError(f"{named} is larger than {most}, the most {kind} may be (split "
                            "it, or check that it is the file meant).")
    return data
