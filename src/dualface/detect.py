"""Face detection with dlib: the HOG frontal detector (fast, the default) or dlib's CNN (MMOD) detector.

Detection runs on a downscaled copy of the frame: dlib's HOG finds faces of about 80 px and up, so a
large face wastes work at full resolution. The caller picks the scale; boxes come back in frame pixels.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import cv2
import dlib
import numpy as np

from dualface.types import Box, Frame
from dualface.weights import CNN_DETECTOR, weights_path


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float


@cache
def _hog() -> "dlib.fhog_object_detector":
    return dlib.get_frontal_face_detector()


@cache
def _cnn() -> "dlib.cnn_face_detection_model_v1":
    return dlib.cnn_face_detection_model_v1(str(weights_path(CNN_DETECTOR)))


def detect_hog(image: Frame, upsample: int = 0) -> list[Detection]:
    rects, scores, _ = _hog().run(image, upsample, 0.0)
    boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
    return [Detection(box, float(score)) for box, score in zip(boxes, scores, strict=True)]


def detect_cnn(image: Frame, upsample: int = 0) -> list[Detection]:
    found = _cnn()(image, upsample)
    return [Detection((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence) for d in found]


DETECTORS: dict[str, Callable[[Frame, int], list[Detection]]] = {"hog": detect_hog, "cnn": detect_cnn}


def detect_faces(frame: Frame, detector: str = "hog", scale: float = 1.0, upsample: int = 0) -> list[Detection]:
    """Detect faces on `frame` resized by `scale`; boxes are returned in `frame`'s pixels."""
    image = frame
    if scale < 1.0:
        height, width = frame.shape[:2]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # a 2000x1 strip keeps a row
        image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    image = np.ascontiguousarray(image)  # dlib rejects strided views
    found = DETECTORS[detector](image, upsample)
    return [Detection(tuple(float(v) / scale for v in d.box), d.score) for d in found]  # type: ignore[arg-type]


def box_size(box: Box) -> float:
    """Side of a box: the geometric mean of width and height."""
    return float(np.sqrt(max(box[2] - box[0], 0) * max(box[3] - box[1], 0)))


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
