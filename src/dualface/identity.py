"""128-d identity embeddings from dlib's face-recognition ResNet (the model behind `face_recognition`;
99.38% on LFW). Two faces of one person are usually under 0.6 apart, dlib's same-person threshold.
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import dlib
import numpy as np

from dualface.detect import box_size, detect_faces
from dualface.errors import DualfaceError
from dualface.landmarks import predict_landmarks
from dualface.types import Embedding, Frame, Landmarks
from dualface.video import read_image
from dualface.weights import FACE_RECOGNITION, weights_path


@cache
def _recognizer() -> "dlib.face_recognition_model_v1":
    return dlib.face_recognition_model_v1(str(weights_path(FACE_RECOGNITION)))


def embed_face(frame: Frame, landmarks: Landmarks) -> Embedding:
    """The identity embedding of the face with these landmarks. `frame` must be C-contiguous RGB."""
    xs, ys = landmarks[:, 0], landmarks[:, 1]
    rect = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    parts = dlib.points([dlib.point(round(x), round(y)) for x, y in landmarks])
    shape = dlib.full_object_detection(rect, parts)
    return np.array(_recognizer().compute_face_descriptor(frame, shape), np.float32)


def distance(a: Embedding, b: Embedding) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def nearest_distance(embedding: Embedding, references: Sequence[Embedding]) -> float:
    return min(distance(embedding, r) for r in references)


def reference_embeddings(paths: Sequence[Path]) -> list[Embedding]:
    """One embedding per reference photo: its largest face."""
    embeddings = []
    for path in paths:
        image = read_image(path)
        faces = detect_faces(image, scale=min(1.0, 1280 / max(image.shape[:2])))
        if not faces:
            faces = detect_faces(image, upsample=1)
        if not faces:
            raise DualfaceError(f"{path}: no face found in the reference photo")
        largest = max(faces, key=lambda d: box_size(d.box))
        embeddings.append(embed_face(image, predict_landmarks(image, largest.box)))
    return embeddings
