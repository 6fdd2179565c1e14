"""What a perfect decoder would score: the target's own real faces pasted where the swap's faces were.

Every frame of the source gets the target's real face whose 68 landmarks, in mean-face units (pose,
expression, and the person's own face shape), are nearest the source face's; it is cut to the model's
crop as training cuts it and pasted through convert's own compositing, with the conversion's settings.
`evaluate` scores that video like the swap. Where the target's real faces fail a bar too, the paste holds
it, not training: a pair whose heads differ keeps the source's head outline, ears and hairline around any
inner face (the identity gap), and a face drawn in the target's proportions sits off the source's
landmarks (the landmark error). It is a retrieval, not a strict bound: the mouth and eyes follow the
source only as closely as the target's own faces happen to, and a trained decoder, which draws the exact
pose, can score a little better (here by up to 0.1 on the identity gap and 0.02 on the landmark error).
"""

from pathlib import Path

import numpy as np
from tqdm import tqdm

from dualface.align import align_matrix, cut, to_mean_face, transform_points
from dualface.alignments import face_landmarks, read_face_png, read_face_record
from dualface.composite import Face, composite, model_input
from dualface.config import PasteConfig
from dualface.data import face_files
from dualface.errors import DualfaceError
from dualface.faces import Found, largest_faces
from dualface.model import ModelConfig
from dualface.types import Landmarks
from dualface.video import probe_video, read_video
from dualface.writer import video_writer


def shape(landmarks: Landmarks) -> np.ndarray:
    """68 landmarks in mean-face units, flat: pose and expression (and the person's face shape)."""
    return transform_points(landmarks, to_mean_face(landmarks)).ravel()


def face_shapes(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The extracted faces in `folder` and their `shape`s, (N, 136)."""
    files = face_files(folder)
    if not files:
        raise DualfaceError(f"{folder}: no extracted faces to paste")
    return files, np.stack([shape(face_landmarks(read_face_record(path))) for path in files])


def paste_real_faces(
    source: Path,
    faces: Path,
    out: Path,
    model: ModelConfig,
    paste: PasteConfig,
    progress: bool = False,
    found: list[Found | None] | None = None,
) -> int:
    """Write `source` with its largest face in every frame replaced by the nearest of the real faces in
    `faces`, cut to `model`'s crop; returns how many faces were replaced. The video is marked synthetic.
    `found`: the source's `largest_faces`, where the caller has them already."""
    files, shapes = face_shapes(faces)
    drawn: dict[int, np.ndarray] = {}
    states: dict = {}
    replaced = 0
    if found is None:
        found = largest_faces(source, progress)
    frames = tqdm(
        zip(read_video(source), found, strict=False),
        total=probe_video(source).frame_count,
        unit="frame",
        desc="real faces",
        disable=not progress,
    )
    with video_writer(out, like=source, kind="the target's real faces pasted (evaluation control)") as write:
        for (_, frame), face in frames:
            if face is None:
                write(frame)
                continue
            nearest = int(np.argmin(((shapes - shape(face.raw)) ** 2).sum(1)))
            if nearest not in drawn:
                image, record = read_face_png(files[nearest])
                matrix = align_matrix(face_landmarks(record), model.size, model.coverage, model.centering)
                drawn[nearest] = cut(image, matrix, model.size).astype(np.float32) / 255
            matrix, crop = model_input(frame, face.landmarks, model.size, model.coverage, model.centering)
            pasted = Face(face.track, face.landmarks, matrix, crop, swapped=drawn[nearest])
            write(composite(frame, [pasted], paste, model.size, states))
            replaced += 1
    return replaced
