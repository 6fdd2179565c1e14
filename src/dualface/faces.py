"""The faces of a video, frame by frame, from one iterator: found by the extraction tracker (detect, track,
68 landmarks, smoothing, embeddings) or read back from the alignments file `dualface extract` wrote.
`convert` draws from it, and `evaluate` finds the source's face with the very same tracker, once per
source (`largest_faces`), for the swap and for each control it scores against that source.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dualface.align import box_from_landmarks
from dualface.alignments import load_alignments
from dualface.detect import box_size
from dualface.errors import DualfaceError
from dualface.prefetch import prefetch
from dualface.track import FaceTracker, TrackerConfig
from dualface.types import Embedding, Frame, Landmarks
from dualface.video import Source, probe_video, read_video


@dataclass
class Found:
    """One face on one frame."""

    track: int  # the same number on every frame of one face
    landmarks: Landmarks  # where the face is cut and pasted: smoothed over time where the tracker smooths
    raw: Landmarks  # as fitted on this frame alone (what measures compare)
    embedding: Embedding | None = None

    @property
    def size(self) -> float:
        return box_size(box_from_landmarks(self.raw))


FrameFaces = tuple[int, Frame, list[Found]]


def tracked(frames: Iterable[tuple[int, Frame]], tracking: TrackerConfig, fps: float) -> Iterator[FrameFaces]:
    """(index, frame, faces) for every frame, from the extraction tracker."""
    tracker = FaceTracker(tracking, fps=fps)
    for index, frame in frames:
        tracks = tracker.update(frame, index)
        yield index, frame, [Found(t.id, t.smoothed, t.landmarks, t.embedding) for t in tracks]


def recorded(frames: Iterable[tuple[int, Frame]], source: Source, path: Path) -> Iterator[FrameFaces]:
    """The same, from an alignments file that `dualface extract` wrote for this input."""
    alignments = load_alignments(path)
    if Path(alignments["source"]["path"]).resolve() != source.path.resolve():
        raise DualfaceError(f"{path} holds the faces of {alignments['source']['path']}, not of {source.path}")
    if not alignments.get("complete") or alignments["settings"].get("every", 1) != 1:
        raise DualfaceError(
            f"{path} does not cover every frame (interrupted, or extracted with --every); convert without it"
        )
    by_index = {entry["index"]: entry["faces"] for entry in alignments["frames"]}
    for index, frame in frames:
        faces = []
        for f in by_index.get(index, []):
            landmarks = np.array(f["landmarks"], np.float32)
            faces.append(Found(f.get("track", f["face"]), landmarks, landmarks, f.get("embedding")))
        yield index, frame, faces


def largest(faces: list[Found]) -> Found | None:
    """The biggest face on a frame: the one a single-subject clip is about."""
    return max(faces, key=lambda f: f.size, default=None)


def largest_faces(source: Path, progress: bool = False) -> list[Found | None]:
    """The biggest face on every frame of a video (None where there is none), found by the extraction
    tracker: a pass of the detector over the whole video, so a caller that scores several videos against
    one source finds them once."""
    info = probe_video(source)
    frames = tracked(prefetch(read_video(source)), TrackerConfig(embed_every=0), info.fps)
    found = tqdm(frames, total=info.frame_count, unit="frame", desc="finding faces", disable=not progress)
    return [largest(faces) for _, _, faces in found]
