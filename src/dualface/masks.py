"""Face masks drawn from 68 landmarks, and the loss-weight map that puts extra weight on eyes and mouth.

A dict of named masks: "hull" (the landmarks' convex hull: brows to chin) and "extended" (the hull with
the brows lifted to reach the forehead, as faceswap's "extended" mask does). `hair` finds, on a drawn
face, the hair that falls over its upper face, which no landmark outlines.
"""

from collections.abc import Callable

import cv2
import numpy as np

from dualface.landmarks import BROWS, LEFT_EYE, MOUTH, NOSE, RIGHT_EYE
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

# Hair is darker than the skin it falls on, and less red (skin's redness is blood, in every skin tone);
# shade on a lit face is only darker. In robust standard deviations of the skin's own lightness and
# redness (Lab's L and a), combined: from HAIR_FROM on a pixel starts to count as hair, at HAIR_AT it is.
# Only darker and less red count: a highlight is left in.
HAIR_FROM, HAIR_AT = 2.5, 4.0


def hair(image: np.ndarray, landmarks: Landmarks) -> Mask:
    """Where a face crop shows hair over its upper face: 1 hair, 0 skin (float32, the crop's size).

    Looked for only above the nose tip and away from the brows, eyes and nose (dark by nature), on pixels
    far darker and less red than the face's own skin (its cheeks, by median and spread). A target's
    fringe or strands fall there; a beard, below the nose, is never taken for it.

    Args:
        image: (S, S, 3) float32 RGB in [0, 1].
        landmarks: the face's 68 landmarks in the crop's pixels.
    """
    size = image.shape[0]
    lab = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2LAB)[..., :2]
    grow = max(1, size // 24)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    features = np.zeros((size, size), np.float32)
    for part in (BROWS, RIGHT_EYE, LEFT_EYE, NOSE, MOUTH):
        features = np.maximum(features, _fill(landmarks[part], size))
    features = cv2.dilate(features, kernel, iterations=2)  # brows are wider than their landmarks' line
    skin = (hull_mask(landmarks, size) > 0) & (features == 0)
    if skin.sum() < 32:
        return np.zeros((size, size), np.float32)
    median = np.median(lab[skin], 0)
    spread = np.maximum(1.4826 * np.median(np.abs(lab[skin] - median), 0), 1.0)  # L of [0, 100], a around 0
    away = np.clip((median - lab) / spread, 0, None)  # darker, less red
    found = np.clip((np.sqrt((away**2).sum(-1)) - HAIR_FROM) / (HAIR_AT - HAIR_FROM), 0, 1).astype(np.float32)
    found[max(0, int(np.ceil(landmarks[33, 1]))) :] = 0  # nose tip and below
    found[features > 0] = 0
    # A strand, not grain: what survives an opening the size of a thin strand, grown back over its soft edge.
    small = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    found = cv2.dilate(cv2.morphologyEx(found, cv2.MORPH_OPEN, small), small)
    return found


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
