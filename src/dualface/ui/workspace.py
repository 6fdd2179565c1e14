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

import bisect
import csv
import io
import json
import os
import re
import tempfile
import threading
import unicodedata
from array import array
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dualface.alignments import load_alignments
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
    old = read_names(root)
    if clean != old and has_model(root):
        # The model's decoders are named after them: `train --resume` and `convert --to` would not find them.
        raise RequestError(
            f"the model in model/ was trained as {old['a']} and {old['b']}: they cannot be renamed now "
            "(a new workspace can use other names)",
            409,
        )
    atomic_write_bytes(root / "project.json", json.dumps({"names": clean}, indent=1).encode(), fsync=False)
    return clean


# ---------------------------------------------------------------------------------------------------------
# uploads


def sanitize_filename(name: str) -> str:
    """A safe file name from what a browser sent: no folders, ASCII letters, digits, '.', '_' and '-' only,
    never hidden or starting with '-' (it is later an argument of the CLI), at most 100 characters."""
    name = re.split(r"[/\\]", name or "")[-1]
    # The extension split off first and cleaned apart: a name of no Latin letters at all (日本語.mpg) keeps
    # its extension, under the stem "upload", instead of becoming "mpg" and being refused as no video.
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem, ext = (unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode() for part in (stem, ext))
    ext = re.sub(r"[^A-Za-z0-9]+", "", ext)[:16].lower()  # no media extension is longer
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip(".-_")
    stem = stem[: 100 - len(ext) - 1] or "upload"
    return f"{stem}.{ext}" if ext else stem


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


def store_uploads(root: Path, slot: str, files: list[tuple[str, BinaryIO]], limit: int) -> list[Path]:
    """Copy uploaded (filename, data) pairs into footage/<slot>/ under sanitised, unused names, after checking
    each one's extension, its size (at most `limit` bytes, else 413) and that it really is a video or an
    image (415). All or nothing: every file is received and checked before any is moved into place, so a
    refused file leaves none of the others behind, and the error says so."""
    folder = root / "footage" / check_slot(slot)
    received: list[tuple[Path, str]] = []
    try:
        for filename, data in files:
            try:
                received.append((_receive(root, filename, data, limit), sanitize_filename(filename)))
            except RequestError as error:
                if len(files) > 1:
                    raise RequestError(f"{error}; none of the {len(files)} files was stored", error.status) from None
                raise
        stored = []
        for partial, name in received:
            path = _free_name(folder, name)
            partial.rename(path)
            stored.append(path)
        return stored
    finally:
        for partial, _ in received:
            partial.unlink(missing_ok=True)


def _receive(root: Path, filename: str, data: BinaryIO, limit: int) -> Path:
    """One upload, checked, in footage/.incoming/: received outside footage/<slot>/, so an extraction running
    meanwhile never meets a half-uploaded file, and with its extension, which FFmpeg goes by."""
    name = sanitize_filename(filename)
    if Path(name).suffix.lower() not in UPLOAD_EXTENSIONS:
        allowed = " ".join(sorted(UPLOAD_EXTENSIONS))
        raise RequestError(f"{filename}: not a video or image file; allowed extensions: {allowed}", 415)
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
        return partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


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


def has_model(root: Path) -> bool:
    """Whether model/ holds a checkpoint to resume or convert with."""
    return bool(model_step(root)) or (root / "model" / "best.safetensors").exists()


def extracted_settings(root: Path) -> dict[str, Any]:
    """`size` and `every` of the newest extraction in faces/a and faces/b, as its alignments file records them
    ({} before the first): extracting again with other ones needs --overwrite, so the page starts from these.
    `every` comes from a video's (a folder of photos records 1 whatever was asked)."""
    found = []
    for path in (p for slot in SLOTS for p in (root / "faces" / slot).glob("*.alignments.json")):
        try:
            alignments = load_alignments(path)
            found.append((path.stat().st_mtime, alignments["source"].get("kind"), alignments["settings"]))
        except (DualfaceError, OSError):
            continue  # one being replaced this instant, or damaged: extraction itself says so
    settings: dict[str, Any] = {}
    for _, kind, recorded in sorted(found, key=lambda item: item[0]):  # the newest last, so its values stay
        if isinstance(recorded.get("size"), int):
            settings["size"] = recorded["size"]
        if kind == "video" and isinstance(recorded.get("every"), int):
            settings["every"] = recorded["every"]
    return settings


@dataclass
class _Log:
    """A training log as read so far: the columns the page shows, and where reading stopped."""

    file: tuple[int, int]  # (device, inode): another file (a new model's log) is read from its start
    header: bytes  # its first line: a log begun again under other columns is read from its start too
    offset: int  # bytes read, to the end of the last whole line
    columns: dict[str, int]
    steps: array = field(default_factory=lambda: array("q"))
    seconds: array = field(default_factory=lambda: array("d"))
    losses: dict[str, array] = field(default_factory=dict)
    egs_per_s: float = 0.0  # the last row's
    run_start: int = 0  # the current run's first row (see `_read_log`)


RATE_WINDOW_S = 60.0  # training seconds the shown step rate is taken over

# The page polls every 750 ms, and a long run's log holds hundreds of thousands of rows (0.6 s to parse
# 300k): each poll reads only the rows appended since the last. Two polls may run at once (thread pool).
_LOGS: dict[Path, _Log] = {}
_LOGS_LOCK = threading.Lock()


def _read_log(path: Path) -> _Log | None:
    """`path`'s log, brought up to date with the whole lines appended since it was last read."""
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            header = f.readline()
            log = _LOGS.get(path)
            same = log is not None and log.file == (stat.st_dev, stat.st_ino) and log.header == header
            if not same or stat.st_size < log.offset:
                names = next(csv.reader([header.decode("utf-8", "replace")]), [])
                if not header.endswith(b"\n") or not {"step", "seconds", "egs_per_s"} <= set(names):
                    return None
                loss_names = [name.removeprefix("loss_") for name in names if name.startswith("loss_")]
                columns = {name: i for i, name in enumerate(names)}
                log = _Log((stat.st_dev, stat.st_ino), header, len(header), columns)
                log.losses = {name: array("d") for name in loss_names}
                _LOGS[path] = log
            f.seek(log.offset)
            data = f.read()
    except OSError:
        return None
    data = data[: data.rfind(b"\n") + 1]  # a half-written last line is read when it is whole
    log.offset += len(data)
    column = log.columns
    for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))):
        if len(row) != len(column):
            continue
        try:
            step, seconds = int(row[column["step"]]), float(row[column["seconds"]])
            egs = float(row[column["egs_per_s"]])
            losses = {name: float(row[column[f"loss_{name}"]]) for name in log.losses}
        except ValueError:
            continue
        # `seconds` restarted from zero with each run in logs written before 2026-12-07 (since, a resumed run's
        # clock goes on from its checkpoint's): there, the current run begins at the last row where it went down.
        if log.seconds and seconds < log.seconds[-1]:
            log.run_start = len(log.steps)
        log.steps.append(step)
        log.seconds.append(seconds)
        for name, value in losses.items():
            log.losses[name].append(value)
        log.egs_per_s = egs
    return log


def training_progress(log_csv: Path, points: int = 300) -> dict | None:
    """What `dualface train` has logged in training_log.csv: the last step, EGs/s, losses, the step rate of
    the current run, and the loss series (at most `points` rows, evenly spaced). None before the first row."""
    with _LOGS_LOCK:
        log = _read_log(log_csv)
        if log is None or not log.steps:
            return None
        last = len(log.steps) - 1
        # The rate of the last RATE_WINDOW_S of training: a resumed run's clock goes on from the earlier
        # sessions', whose pace (another load on the CPU) is not this one's.
        first = bisect.bisect_left(log.seconds, log.seconds[last] - RATE_WINDOW_S, lo=log.run_start, hi=last)
        steps = log.steps[last] - log.steps[first]
        seconds = log.seconds[last] - log.seconds[first]
        keep = range(last, -1, -max(1, len(log.steps) // points))[:points][::-1]  # counted back from the last row
        return {
            "step": log.steps[last],
            "egs_per_s": log.egs_per_s,
            "steps_per_s": steps / seconds if steps and seconds > 0 else None,
            "losses": {name: values[last] for name, values in log.losses.items()},
            "series": {
                "steps": [log.steps[i] for i in keep],
                **{name: [values[i] for i in keep] for name, values in log.losses.items()},
            },
        }
