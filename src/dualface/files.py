"""Writing files so that a crash or a full disk never leaves a half-written file in a good one's place."""

import contextlib
import fcntl
import logging
import os
import re
import tempfile
from pathlib import Path

from dualface.errors import DualfaceError

log = logging.getLogger(__name__)


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
        fcntl.flock(fd, fcntl.LOCK_EX)  # marks it as being written (see remove_stale_temps)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()  # a full disk shows here, before the rename
            if fsync:
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)  # while still locked: no cleaner may take it for an orphan
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: Path, data: bytes) -> None:
    """`atomic_write_bytes` for a file the user asked for (a report, a chart, a picture): a failure, a full
    disk mostly, is a one-line error naming it."""
    try:
        atomic_write_bytes(path, data, fsync=False)
    except OSError as error:
        raise DualfaceError(f"{path}: cannot write ({error.strerror or error})") from None


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


LOCK_NAME = ".dualface.lock"


class FolderLock:
    """An exclusive hold on a folder for one writer (`with FolderLock(path, "train"):`).

    flock on a lock file inside the folder: the kernel drops it when the process ends however it ends
    (Ctrl-C, kill -9, a crash), so a dead run never leaves the folder locked, and a second live writer
    is refused at once instead of mixing its files with the first's.
    """

    def __init__(self, folder: Path, what: str) -> None:
        self.folder, self.what, self.fd = Path(folder), what, -1

    def __enter__(self) -> "FolderLock":
        path = self.folder / LOCK_NAME
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as error:
            raise DualfaceError(f"{path}: cannot create the lock file ({error.strerror or error})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(self.fd)
            os.close(self.fd)
            raise DualfaceError(
                f"{self.folder}: in use by another dualface {holder}; wait for it to finish or choose another folder"
            ) from None
        # Who holds it, for the message the next writer gets (best effort: a full disk must not stop us).
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{self.what} (pid {os.getpid()})".encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the flock; the file stays, empty locks cost nothing


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "process"
    except OSError:
        return "process"


def remove_stale_temps(folder: Path, pattern: str) -> list[Path]:
    """Delete temporary files matching `pattern` that no live process is writing (a run killed with kill -9
    leaves its temporary file behind). A writer holds a flock on its temporary file while it writes, so a
    file whose lock can be taken is an orphan."""
    removed = []
    for path in Path(folder).glob(pattern):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # being written right now
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) an interrupted run left in %s", len(removed), folder)
    return removed


# ---------------------------------------------------------------------------------------------------------
# what a model folder holds (named here, without torch, so the UI reads them too)

TRAINING_LOG = "training_log.csv"  # step, seconds, lr, loss_<identity>..., egs_per_s
EVAL_LOG = "eval_log.csv"  # step, then each held-out figure (`train --eval-every`)
_CHECKPOINT = re.compile(r"^step-(\d+)\.safetensors$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.safetensors"


def checkpoints_in(folder: Path) -> list[Path]:
    """A model folder's step checkpoints, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(folder).glob("step-*.safetensors") if (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints_in(folder)
    return found[-1] if found else None
