"""Writing files so that a crash or a full disk never leaves a half-written file in a good one's place."""

import os
import tempfile
from pathlib import Path

from dualface.errors import DualfaceError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files only their owner can read; what we write should get the usual permissions.
FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write to a temporary file beside `path`, fsync it (unless told not to), then rename it over `path`.

    Without fsync the rename still guarantees no reader ever sees a half-written file; fsync adds that the
    data survives a power cut, which is worth its cost for checkpoints and alignments, not for every face.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` if needed and prove a file can be written there, or raise a one-line error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DualfaceError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise DualfaceError(f"{path}: cannot write here ({error.strerror or error})") from None
    return path
