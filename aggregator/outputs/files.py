"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import OutputError


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name beside `path`, fsync, then rename into place: a reader
    (or a web server) sees the old file or the new one, never half of either. A disk
    that is full or read-only is an OutputError, and the old file stays."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"cannot write {path} ({e.strerror or e}); the old file stays") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({e.strerror or e}); the old file stays") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
