"""The project folder the web UI works in: its layout, what may be uploaded into it, and what it holds.

    footage/a, footage/b   uploads of each identity (videos or images)
    faces/a, faces/b       `dualface extract` output, one folder per identity
    model/                 `dualface train` output
    convert/               conversions, a browser-playable copy of each original, evaluation reports
    jobs/<id>.json, .log   one record and one log per job (see jobs.py)
    project.json           the identities' names

The two identities live in fixed slots "a" and "b" (folder names); their display and model names are
the user's, kept in project.json, so renaming never moves files.
"""

import csv
import io
import json
import os
import re
import tempfile
import unicodedata
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

from dualface.errors import DualfaceError, TooLargeError
from dualface.files import FILE_MODE, atomic_write_bytes, ensure_writable_dir, latest_checkpoint
from dualface.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, read_image, read_video

SLOTS = ("a", "b")
FOLDERS = ("footage/a", "footage/b", "faces/a", "faces/b", "model", "convert", "jobs")
UPLOAD_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


class RequestError(DualfaceError):
    """A request the UI refuses, with the HTTP status to answer it with and a one-line reason."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def init_workspace(root: Path) -> Path:
    """Create the layout (idempotent) and return the workspace's resolved path."""
    root = ensure_writable_dir(Path(root).expanduser().resolve())
    for folder in FOLDERS:
        ensure_writable_dir(root / folder)
    return root


def inside(root: Path, relative: str) -> Path:
    """`relative` resolved under `root`; refuses anything that lands outside it (`..`, absolute paths,
    symlinks pointing out), so no request can read or delete a file beyond the workspace."""
    try:
        path = (root / relative).resolve()
    except (ValueError, OSError):  # a NUL byte, a name too long
        raise RequestError(f"{relative!r}: not a usable path", 404) from None
    if not path.is_relative_to(root):
        raise RequestError(f"{relative}: outside the workspace", 403)
    return path


def check_slot(slot: str) -> str:
    if slot not in SLOTS:
        raise RequestError(f"unknown identity slot {slot!r}: use a or b", 404)
    return slot


# ---------------------------------------------------------------------------------------------------------
# names


def read_names(root: Path) -> dict[str, str]:
    try:
        names = json.loads((root / "project.json").read_text())["names"]
        return {slot: str(names[slot]) for slot in SLOTS}
    except (OSError, ValueError, KeyError, TypeError):
        return {slot: slot for slot in SLOTS}


def write_names(root: Path, names: dict[str, str]) -> dict[str, str]:
    """Validate and store the identities' names. They become `dualface train --name`, hence its rules."""
    given = {slot: names.get(slot) for slot in SLOTS}
    if not all(isinstance(name, str) for name in given.values()):  # str(None) would pass as the name "None"
        raise RequestError("names of A and B: each must be a string")
    clean = {slot: name.strip() for slot, name in given.items()}
    for slot, name in clean.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", name):  # no leading '-': it is a CLI argument
            raise RequestError(f"name of {slot.upper()} {name!r}: use 1-32 letters, digits, '_' or '-', no leading '-'")
    if clean["a"] == clean["b"]:
        raise RequestError("A and B need different names")
    atomic_write_bytes(root / "project.json", json.dumps({"names": clean}, indent=1).encode(), fsync=False)
    return clean


# ---------------------------------------------------------------------------------------------------------
# uploads


def sanitize_filename(name: str) -> str:
    """A safe file name from what a browser sent: no folders, ASCII letters, digits, '.', '_' and '-' only,
    never hidden or starting with '-' (it is later an argument of the CLI), at most 100 characters."""
    name = re.split(r"[/\\]", name or "")[-1]
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".-_")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem[: 100 - len(ext) - 1] or "upload"
    return f"{stem}.{ext.lower()}" if ext else stem


def _free_name(folder: Path, name: str) -> Path:
    path = folder / name
    stem, suffix = path.stem, path.suffix
    count = 1
    while path.exists():
        path = folder / f"{stem}-{count}{suffix}"
        count += 1
    return path


def media_kind(path: Path, label: str | None = None) -> str:
    """'video' or 'image' when dualface can read the file (PyAV decodes a frame of it, or Pillow opens it);
    raises RequestError (415) otherwise, naming the file as `label`. The extension picks which reader must
    succeed: the same one that will read it at extraction."""
    label = label or path.name
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        try:
            read_image(path)
        except TooLargeError as error:
            raise RequestError(f"{label}: {_cause(error, path, label)}", 413) from None
        except DualfaceError as error:
            raise RequestError(f"{label}: not an image Pillow can open ({_cause(error, path, label)})", 415) from None
        return "image"
    try:
        with closing(read_video(path)) as frames:  # closing the generator closes the container
            next(frames)
    except DualfaceError as error:
        raise RequestError(f"{label}: not a video PyAV can open ({_cause(error, path, label)})", 415) from None
    return "video"


def _cause(error: Exception, path: Path, label: str) -> str:
    """The reader's message without the temporary file's path (it starts with it, and Pillow's repeats it)."""
    return str(error).split(": ", 1)[-1].replace(str(path), label)


def store_upload(root: Path, slot: str, filename: str, data: BinaryIO, limit: int) -> Path:
    """Copy one uploaded file into footage/<slot>/ under a sanitised, unused name, after checking its
    extension, its size (at most `limit` bytes, else 413) and that it really is a video or an image (415)."""
    name = sanitize_filename(filename)
    if Path(name).suffix.lower() not in UPLOAD_EXTENSIONS:
        allowed = " ".join(sorted(UPLOAD_EXTENSIONS))
        raise RequestError(f"{filename}: not a video or image file; allowed extensions: {allowed}", 415)
    folder = root / "footage" / check_slot(slot)
    # Received outside footage/<slot>/, so an extraction running meanwhile never meets a half-uploaded file,
    # and with its extension, which FFmpeg goes by.
    incoming = root / "footage" / ".incoming"
    incoming.mkdir(exist_ok=True)
    fd, partial_name = tempfile.mkstemp(dir=incoming, suffix=Path(name).suffix)
    partial = Path(partial_name)
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            while chunk := data.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise RequestError(f"{filename}: larger than the {limit // 2**20} MB upload limit", 413)
                out.write(chunk)
        media_kind(partial, label=filename)
        os.chmod(partial, FILE_MODE)  # mkstemp's owner-only mode is not what an uploaded file should keep
        path = _free_name(folder, name)
        partial.rename(path)
        return path
    finally:
        partial.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# what the workspace holds


def list_footage(root: Path, slot: str) -> list[dict]:
    folder = root / "footage" / check_slot(slot)
    items = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in UPLOAD_EXTENSIONS:
            kind = "image" if path.suffix.lower() in IMAGE_EXTENSIONS else "video"
            items.append({"name": path.name, "kind": kind, "bytes": path.stat().st_size, "path": f"footage/{slot}"})
    return items


def list_faces(root: Path, slot: str, limit: int = 400) -> dict:
    """The extracted face PNGs of a slot: the count, and the first `limit` names (a page can't show 5,000)."""
    names = sorted(p.name for p in (root / "faces" / check_slot(slot)).glob("*.png"))
    return {"count": len(names), "names": names[:limit]}


def drop_face(root: Path, slot: str, name: str) -> None:
    """Delete one face PNG. Safe for training and extraction: each PNG carries its own record."""
    folder = root / "faces" / check_slot(slot)
    path = inside(root, f"faces/{slot}/{name}")
    if path.parent != folder or path.suffix != ".png" or not path.is_file():
        raise RequestError(f"faces/{slot}/{name}: no such face", 404)
    path.unlink()


def model_step(root: Path) -> int:
    """The step of the model's latest checkpoint, 0 when there is none (from the file name)."""
    latest = latest_checkpoint(root / "model")
    return int(latest.stem.removeprefix("step-")) if latest else 0


def training_progress(log_csv: Path, points: int = 300) -> dict | None:
    """What `dualface train` has logged in training_log.csv: the last step, EGs/s, losses, the step rate of
    the current run, and the loss series (at most `points` rows, evenly spaced). None before the first row."""
    try:
        rows = list(csv.reader(io.StringIO(log_csv.read_text())))
    except OSError:
        return None
    header, rows = (rows[0], rows[1:]) if rows else ([], [])
    rows = [r for r in rows if len(r) == len(header)]  # the last line may be half-written
    if not rows:
        return None
    column = {name: i for i, name in enumerate(header)}
    loss_names = [name.removeprefix("loss_") for name in header if name.startswith("loss_")]
    last = rows[-1]
    # `seconds` restarts from zero with each run (--resume appends to the log): the current run's first
    # row is where it last went down.
    first = len(rows) - 1
    while first > 0 and float(rows[first - 1][column["seconds"]]) <= float(rows[first][column["seconds"]]):
        first -= 1
    steps = int(last[column["step"]]) - int(rows[first][column["step"]])
    seconds = float(last[column["seconds"]]) - float(rows[first][column["seconds"]])
    keep = rows[:: -max(1, len(rows) // points)][:points][::-1]  # counted back from the last row, so it is in
    return {
        "step": int(last[column["step"]]),
        "egs_per_s": float(last[column["egs_per_s"]]),
        "steps_per_s": steps / seconds if steps and seconds > 0 else None,
        "losses": {n: float(last[column[f"loss_{n}"]]) for n in loss_names},
        "series": {
            "steps": [int(r[column["step"]]) for r in keep],
            **{n: [float(r[column[f"loss_{n}"]]) for r in keep] for n in loss_names},
        },
    }
