"""Face masks drawn from 68 landmarks, and the loss-weight map that puts extra weight on eyes and mouth.

A dict of named masks: "hull" (the landmarks' convex hull: brows to chin) and "extended" (the hull with
the brows lifted to reach the forehead, as faceswap's "extended" mask does).
"""

from collections.abc import Callable

import cv2
import numpy as np

from dualface.landmarks import BROWS, LEFT_EYE, MOUTH, RIGHT_EYE
from dualface.types import Landmarks, Mask


def _fill(points: np.ndarray, size: int) -> Mask:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return mask.astype(np.float32)


def hull_mask(landmarks: Landmarks, size: int) -> Mask:
    return _fill(landmarks, size)


def extended_mask(landmarks: Landmarks, size: int) -> Mask:
    """The hull with the brows lifted by 35% of the chin-to-brow distance, which takes in the forehead
    that the plain hull leaves out."""
    points = landmarks.copy()
    chin = landmarks[8]
    brow_centre = landmarks[BROWS].mean(0)
    lift = (brow_centre - chin) * 0.35
    points[BROWS] = landmarks[BROWS] + lift
    return _fill(points, size)


def hull_in_frame(landmarks: Landmarks, shape: tuple[int, ...]) -> np.ndarray:
    """The landmarks' convex hull as a boolean (H, W) mask over a whole frame."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    return mask.astype(bool)


MASKS: dict[str, Callable[[Landmarks, int], Mask]] = {"hull": hull_mask, "extended": extended_mask}


def region_weights(landmarks: Landmarks, size: int, eye_weight: float, mouth_weight: float) -> Mask:
    """1 everywhere, `eye_weight` over the eyes and `mouth_weight` over the mouth (hulls dilated a little,
    so the weight covers the skin that moves with them)."""
    weights = np.ones((size, size), np.float32)
    grow = max(1, size // 32)
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    for region, weight in ((RIGHT_EYE, eye_weight), (LEFT_EYE, eye_weight), (MOUTH, mouth_weight)):
        area = cv2.dilate(_fill(landmarks[region], size), kernel) > 0
        weights[area] = np.maximum(weights[area], weight)
    return weights
