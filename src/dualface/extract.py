"""Stage 1, extraction: media -> detected, tracked faces -> 68 landmarks -> aligned crops + alignments.

For each input, `extract` writes `<name>_<frame>_<face>.png` crops into the output folder and one
`<name>.alignments.json`. The alignments file is saved atomically every few seconds with `complete: false`,
so an interrupted run resumes where it stopped and a finished input is skipped on the next run.
"""

import logging
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from dualface.align import align_matrix, cut
from dualface.alignments import encode_face_png, load_alignments, new_alignments, rounded, save_alignments
from dualface.config import CUT, ExtractConfig
from dualface.errors import DamagedMediaError, DualfaceError
from dualface.files import FolderLock, atomic_write_bytes, ensure_writable_dir, remove_stale_temps
from dualface.identity import nearest_distance, reference_embeddings
from dualface.interrupts import Stop, stop_signals
from dualface.prefetch import prefetch
from dualface.threads import ThreadPolicy
from dualface.track import FaceTracker, Track, TrackerConfig
from dualface.types import Embedding, Frame
from dualface.video import Source, expand_inputs, first_of, probe_video, read_frames

log = logging.getLogger(__name__)

SAVE_EVERY_S = 5.0  # how much work an interruption can cost


@dataclass
class InputSummary:
    path: Path
    frames_read: int = 0  # decoded
    frames_resumed: int = 0  # of those, read by an earlier, interrupted run
    frames_processed: int = 0  # searched for faces (every Nth of those read)
    frames_with_face: int = 0
    faces_written: int = 0
    seconds: float = 0.0
    skipped: bool = False  # already extracted with these settings
    error: str | None = None

    @property
    def fps(self) -> float:
        return (self.frames_read - self.frames_resumed) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ExtractSummary:
    inputs: list[InputSummary]

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.inputs if s.error]

    def total(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.inputs)

    @property
    def fps(self) -> float:
        done = [s for s in self.inputs if not s.skipped]
        seconds = sum(s.seconds for s in done)
        return sum(s.frames_read - s.frames_resumed for s in done) / seconds if seconds > 0 else 0.0


def extract(config: ExtractConfig) -> ExtractSummary:
    """Extract aligned faces from every input; a bad input is reported in the summary, the rest go on."""
    ensure_writable_dir(config.output)
    # One writer per output folder: two runs would write the same faces and race on each alignments file.
    # SIGTERM (a job runner's stop, `kill`) saves what was done, as Ctrl-C does.
    with FolderLock(config.output, "extract"), stop_signals("the alignments files") as stop:
        remove_stale_temps(config.output, ".*.tmp")  # what a killed run was writing
        return _extract(config, stop)


def _extract(config: ExtractConfig, stop: Stop | None = None) -> ExtractSummary:
    ThreadPolicy().start()  # OpenCV's threads: the cores other processes leave idle
    references = reference_embeddings(config.references) if config.references else []
    sources, problems = expand_inputs(config.inputs)
    summaries = [InputSummary(path, error=problem) for path, problem in problems]
    names = [s.name for s in sources]
    for source in sources:
        summary = InputSummary(source.path)
        summaries.append(summary)
        if names.count(source.name) > 1:
            summary.error = f"{source.path}: another input is also named '{source.name}'; extract it separately"
            continue
        try:
            extract_source(source, config, references, summary, stop)
        except DualfaceError as error:
            summary.error = str(error)
    return ExtractSummary(summaries)


def _source_info(source: Source) -> dict[str, Any]:
    stat = source.path.stat()
    info: dict[str, Any] = {"path": str(source.path.resolve()), "kind": source.kind}
    if source.kind == "video":
        video = probe_video(source.path)
        info |= {
            "bytes": stat.st_size,
            "mtime": stat.st_mtime,
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
            "frame_count": video.frame_count,
        }
    else:
        info |= {"frame_count": len(source.files), "files": [str(p.resolve()) for p in source.files]}
    return info


def _settings(config: ExtractConfig, info: dict[str, Any]) -> dict[str, Any]:
    """The settings that shaped an input's faces: --every thins a video only (each photo is its own)."""
    return {**config.settings(), "every": config.every if info["kind"] == "video" else 1}


def _resume_point(path: Path, info: dict[str, Any], config: ExtractConfig) -> dict[str, Any] | None:
    """The alignments to continue from, or None to start afresh."""
    if config.overwrite:
        _forget(path)
        return None
    if not path.exists():
        return None
    old = load_alignments(path)
    if old["source"]["path"] != info["path"]:
        raise DualfaceError(f"{path} holds faces of {old['source']['path']}; use another output folder")
    changed = [k for k, v in _settings(config, info).items() if old["settings"].get(k) != v]
    if changed == ["every"] and info["kind"] == "images":
        raise DualfaceError(
            f"{info['path']} was extracted into {path.parent} from 1 in {old['settings']['every']} photos (--every "
            "thinned photo folders then; now it thins videos only): pass --overwrite to extract every photo"
        )
    if changed:
        raise DualfaceError(
            f"{info['path']} was extracted into {path.parent} with other settings ({', '.join(changed)}); "
            "pass --overwrite to extract it again, or use another output folder"
        )
    # The size too: a phone video extracted before frames were turned upright holds sideways landmarks.
    same_file = all(old["source"].get(k) == info.get(k) for k in ("bytes", "mtime", "files", "width", "height"))
    if not same_file:
        raise DualfaceError(f"{info['path']} changed since it was extracted; pass --overwrite to extract it again")
    return old


def _forget(path: Path) -> None:
    """An input's earlier extraction gone (--overwrite), its faces first: left behind, a stale face would be
    trained on beside the new ones. The faces are the ones its alignments file lists, and any a run killed
    before its first save wrote under the input's name."""
    stem = path.name.removesuffix(".alignments.json")
    named = re.compile(re.escape(stem) + r"_\d{6}_\d+\.png")
    faces = {p for p in path.parent.iterdir() if named.fullmatch(p.name)}
    if path.exists():
        try:
            listed = load_alignments(path)["frames"]
            faces |= {path.parent / face["png"] for frame in listed for face in frame.get("faces", [])}
        except (DualfaceError, KeyError, TypeError):
            pass  # a damaged file: its faces are the ones named after the input
    try:
        path.unlink(missing_ok=True)  # first: a folder must never list faces that are gone
        for face in faces:
            face.unlink(missing_ok=True)
    except OSError as error:
        raise DualfaceError(f"{path.parent}: cannot remove the earlier faces ({error.strerror or error})") from None


def extract_source(
    source: Source, config: ExtractConfig, references: list[Embedding], summary: InputSummary, stop: Stop | None = None
) -> None:
    """Extract one source into config.output, resuming a previous run where one was interrupted. A signal
    (`stop`) during the closing save waits for it, so the folder never holds faces its file does not list."""
    start = time.perf_counter()
    info = _source_info(source)
    path = config.output / f"{source.name}.alignments.json"
    every = _settings(config, info)["every"]
    alignments = _resume_point(path, info, config)
    if alignments is not None and alignments["complete"]:
        summary.skipped = True
        _count(alignments, every, summary)
        if "damage" in alignments["source"]:  # reported as the first run did, so its exit status is the same
            raise DamagedMediaError(f"{alignments['source']['damage']} (extracted before)")
        if summary.faces_written == 0:
            raise DualfaceError(f"{source.path}: no face found in {summary.frames_processed} frame(s) searched before")
        return
    if alignments is None:
        alignments = new_alignments(info, _settings(config, info))
    resume_from = summary.frames_resumed = alignments["frames_read"]
    still = source.kind == "images"
    tracker = FaceTracker(
        TrackerConfig(
            detector=config.detector,
            detect_every=config.detect_every,
            detect_size=config.detect_size,
            min_size=config.min_size,
            still=still,
            smooth=config.smooth,
            embed_every=config.embed_every,
        ),
        fps=info.get("fps", 25.0),  # the tracker times frames by their index in the video, every one counted
    )
    crop = {"size": config.size, "coverage": config.coverage, "centering": config.centering}
    writes: list[Future] = []
    unsaved: list[Path] = []  # faces written since the alignments file was last saved
    failed = False  # a save failed: the folder is as of the last save, and must stay so

    def save() -> None:
        nonlocal failed
        try:
            _save_progress(path, alignments, writes, unsaved)
        except DualfaceError:
            failed = True  # its faces were deleted: count what the folder holds
            raise

    last_save = time.perf_counter()
    bar = tqdm(
        total=info["frame_count"] or None,
        initial=resume_from,
        unit="frame",
        desc=source.name,
        disable=not config.progress,
        dynamic_ncols=True,
        leave=False,
    )
    # PNG encoding releases the GIL: one writer thread takes the second core while this one tracks.
    # (Two writers measured slower: three busy threads on two cores starve the tracker.)
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            unreadable: list[str] = []
            for index, frame in prefetch(read_frames(source, unreadable)):
                if index < resume_from:
                    continue
                if index % every:
                    alignments["frames_read"] = index + 1
                    continue
                tracks = tracker.update(frame, index)
                faces = []
                for track in tracks:
                    if references and nearest_distance(track.embedding, references) > config.threshold:
                        continue
                    record, face = _face(frame, track, len(faces), crop)
                    record["png"] = f"{source.name}_{index:06d}_{record['face']}.png"
                    png_record = {"source": info["path"], "frame": index, **crop, "cut": CUT, **record}
                    writes.append(pool.submit(_write_png, config.output / record["png"], face, png_record))
                    unsaved.append(config.output / record["png"])
                    faces.append(record)
                if faces:
                    entry: dict[str, Any] = {"index": index, "faces": faces}
                    if still:
                        entry["file"] = str(source.files[index].name)
                    alignments["frames"].append(entry)
                    summary.faces_written += len(faces)
                alignments["frames_read"] = index + 1
                bar.update(index + 1 - bar.n)
                bar.set_postfix(faces=summary.faces_written, refresh=False)
                if time.perf_counter() - last_save > SAVE_EVERY_S:
                    save()
                    last_save = time.perf_counter()
            alignments["complete"] = True
            if unreadable:  # the folder's other photos were extracted; still, not every one could be
                raise DamagedMediaError(f"{first_of(unreadable)}: skipped")
        except DamagedMediaError as error:
            # Every readable frame was processed: keep the work, note the damage, still report it.
            alignments["complete"] = True
            alignments["source"]["damage"] = str(error)
            raise
        finally:
            if stop is not None:
                stop.defer = True  # first: a signal from here on waits for the save
            bar.close()
            # Also on an interruption: keep what was done. If that fails too (a full disk), its one-line
            # error replaces the interruption's, and the folder is left as of the last save.
            try:
                # An input that failed before a frame leaves no file; after a failed save, a second one
                # would record the faces the first deleted.
                if not failed and (alignments["frames_read"] or path.exists()):
                    save()
            finally:
                if failed:
                    alignments = load_alignments(path) if path.exists() else new_alignments(info, {})
                _count(alignments, every, summary)
                summary.seconds = time.perf_counter() - start
                if stop is not None:
                    stop.defer = False
    if stop is not None and stop.asked:
        raise KeyboardInterrupt  # the signal that came during the save: stop now that it is done
    if summary.faces_written == 0:
        who = " matching the reference" if references else ""
        raise DualfaceError(f"{source.path}: no face{who} found in {summary.frames_processed} frame(s) searched")


def _count(alignments: dict[str, Any], every: int, summary: InputSummary) -> None:
    summary.frames_read = alignments["frames_read"]
    summary.frames_processed = len(range(0, alignments["frames_read"], every))
    summary.frames_with_face = len(alignments["frames"])
    summary.faces_written = sum(len(f["faces"]) for f in alignments["frames"])


def _face(frame: Frame, track: Track, number: int, crop: dict[str, Any]) -> tuple[dict[str, Any], Frame]:
    matrix = align_matrix(track.smoothed, crop["size"], crop["coverage"], crop["centering"])
    face = cut(frame, matrix, crop["size"])
    record = {
        "face": number,
        "track": track.id,
        "box": rounded(track.box, 1),
        "landmarks": rounded(track.smoothed, 2),
        "matrix": rounded(matrix, 6),
        "embedding": rounded(track.embedding, 5) if track.embedding is not None else None,
        "embedding_frame": track.embedding_index if track.embedding is not None else None,
        "score": round(track.score, 4),
        "detected": track.detected,
        "blur": round(blur_score(face), 2),
    }
    return record, face


def blur_score(face: Frame) -> float:
    """Variance of the Laplacian over the centre of the face: low means blurred (motion, focus, upscaling)."""
    size = face.shape[0]
    centre = face[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4]
    grey = cv2.cvtColor(centre, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def _write_png(path: Path, face: Frame, record: dict[str, Any]) -> None:
    atomic_write_bytes(path, encode_face_png(face, record), fsync=False)


def _save_progress(path: Path, alignments: dict[str, Any], writes: list[Future], unsaved: list[Path]) -> None:
    """Wait for the queued face writes, then save the alignments file that records them.

    On a failure (a full disk) the faces written since the last save are deleted, so the folder holds
    exactly what its alignments file (the last one saved, or none) records, the next run resumes from
    there, and the space they took is free again. A one-line error names the folder and the cause."""
    failure = None
    for future in writes:
        try:
            future.result()
        except OSError as error:
            failure = failure or error
    writes.clear()
    if failure is None:
        try:
            save_alignments(path, alignments)
        except OSError as error:
            failure = error
    if failure is None:
        unsaved.clear()
        return
    for png in unsaved:
        png.unlink(missing_ok=True)
    unsaved.clear()
    kept = "it resumes from the last save" if path.exists() else "nothing of this input was kept"
    raise DualfaceError(
        f"{path.parent}: cannot write faces ({failure.strerror or failure}); {kept} when run again"
    ) from None
