"""68-point facial landmarks from dlib's shape predictor (an ensemble of regression trees: V. Kazemi and
J. Sullivan, "One Millisecond Face Alignment with an Ensemble of Regression Trees", CVPR 2014), with the
iBUG 300-W point layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
"""

from functools import cache

import dlib
import numpy as np

from dualface.types import Box, Frame, Landmarks
from dualface.weights import SHAPE_PREDICTOR_68, weights_path

# The point groups, as index arrays (landmarks[MOUTH] is the (20, 2) mouth). Every module takes them from here.
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
RIGHT_EYE = np.arange(36, 42)  # the subject's right, on the left of the image: outer corner, upper lid, inner...
LEFT_EYE = np.arange(42, 48)  # ...corner, lower lid (so the left eye starts at its inner corner)
MOUTH = np.arange(48, 68)  # outer lips 48-59, inner lips 60-67


@cache
def _predictor() -> "dlib.shape_predictor":
    return dlib.shape_predictor(str(weights_path(SHAPE_PREDICTOR_68)))


def predict_landmarks(frame: Frame, box: Box) -> Landmarks:
    """The 68 landmarks of the face in `box`, in frame pixels. `frame` must be C-contiguous."""
    rect = dlib.rectangle(*(round(v) for v in box))
    shape = _predictor()(frame, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def mouth_opening(landmarks: Landmarks) -> float:
    """Inner-lip gap over mouth width: 0 for closed lips, about 0.3-0.6 wide open; scale-free."""
    gap = np.linalg.norm(landmarks[[61, 62, 63]] - landmarks[[67, 66, 65]], axis=1).mean()
    width = np.linalg.norm(landmarks[54] - landmarks[48])
    return float(gap / max(width, 1e-6))
