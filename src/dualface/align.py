"""Face alignment: a similarity transform of 68 landmarks onto a canonical mean face, and the square crop.

The fit is Umeyama's closed-form least-squares similarity (S. Umeyama, "Least-squares estimation of
transformation parameters between two point patterns", IEEE TPAMI 13(4), 1991), the method the
deepfakes/faceswap/DeepFaceLab lineage aligns with.

Canonical space ("mean-face units"): MEAN_FACE is the initial shape of dlib's 68-point shape predictor,
the mean of the iBUG 300-W training shapes, expressed in the unit square of dlib's HOG detector box. Two
things follow: the unit square is exactly the box the predictor expects, so a tracker can place the
predictor from the previous landmarks (`box_from_landmarks`); and crops are defined by a centre and a side
length in the same units, whatever the resolution of the source.
"""

import math
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from dualface.types import Box, Frame, Landmarks, Matrix

# Read from shape_predictor_68_face_landmarks.dat (`tests/test_align.py` re-reads and compares).
MEAN_FACE = np.array(
    [
        (0.029446, 0.321950),
        (0.032626, 0.446431),
        (0.045943, 0.570428),
        (0.071791, 0.692023),
        (0.120274, 0.804951),
        (0.194731, 0.902886),
        (0.285819, 0.984597),
        (0.386310, 1.050212),
        (0.500003, 1.069708),
        (0.613697, 1.050210),
        (0.714190, 0.984596),
        (0.805277, 0.902887),
        (0.879741, 0.804952),
        (0.928229, 0.692024),
        (0.954078, 0.570430),
        (0.967397, 0.446431),
        (0.970579, 0.321947),
        (0.119182, 0.230909),
        (0.177509, 0.178388),
        (0.259835, 0.162735),
        (0.345086, 0.174880),
        (0.424904, 0.208063),
        (0.575140, 0.208059),
        (0.654959, 0.174876),
        (0.740211, 0.162732),
        (0.822538, 0.178384),
        (0.880866, 0.230908),
        (0.500021, 0.305547),
        (0.500017, 0.385739),
        (0.500015, 0.465222),
        (0.500011, 0.547027),
        (0.404506, 0.602343),
        (0.450375, 0.619234),
        (0.500013, 0.633663),
        (0.549654, 0.619236),
        (0.595526, 0.602348),
        (0.213870, 0.315571),
        (0.264750, 0.286316),
        (0.325858, 0.287176),
        (0.379375, 0.327564),
        (0.322083, 0.337778),
        (0.261248, 0.336975),
        (0.620667, 0.327560),
        (0.674184, 0.287173),
        (0.735291, 0.286312),
        (0.786169, 0.315570),
        (0.738790, 0.336972),
        (0.677958, 0.337776),
        (0.317107, 0.751117),
        (0.384429, 0.724204),
        (0.452547, 0.710256),
        (0.500013, 0.721995),
        (0.547484, 0.710262),
        (0.615600, 0.724211),
        (0.682923, 0.751117),
        (0.617772, 0.816892),
        (0.551586, 0.846004),
        (0.500013, 0.851504),
        (0.448439, 0.846000),
        (0.382257, 0.816887),
        (0.345192, 0.754674),
        (0.451943, 0.749935),
        (0.500013, 0.755041),
        (0.548087, 0.749940),
        (0.654835, 0.754675),
        (0.549021, 0.785685),
        (0.500015, 0.791599),
        (0.451010, 0.785681),
    ],
    dtype=np.float32,
)

# Brows, nose and eyes: the points that hold still while a person talks. The jaw and lips move with the
# mouth, and fitting on them would make the crop bob with speech.
ALIGN_POINTS = np.arange(17, 48)

Centering = Literal["face", "head"]
# Crop centre in mean-face units. "face" centres on the landmarks (brows to chin); "head" moves up to take
# in the forehead and hairline, at the cost of more background at the chin.
CENTERS: dict[str, tuple[float, float]] = {"face": (0.5, 0.62), "head": (0.5, 0.45)}
FACE_WIDTH = float(MEAN_FACE[:, 0].max() - MEAN_FACE[:, 0].min())  # jaw to jaw, mean-face units


def umeyama(src: np.ndarray, dst: np.ndarray) -> Matrix:
    """Least-squares similarity (rotation, uniform scale, translation) taking src onto dst.

    Args:
        src: (N, 2) points.
        dst: (N, 2) points.

    Returns:
        (2, 3) matrix M with dst ~= src @ M[:, :2].T + M[:, 2].
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection is not a pose
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var_src
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix.astype(np.float32)


def transform_points(points: np.ndarray, matrix: Matrix) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    points = np.asarray(points, np.float32)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: Matrix) -> Matrix:
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64)).astype(np.float32)


def matrix_scale(matrix: Matrix) -> float:
    """The uniform scale of a similarity transform."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))


def to_mean_face(landmarks: Landmarks) -> Matrix:
    """Similarity taking source pixels to mean-face units, fitted on ALIGN_POINTS."""
    return umeyama(landmarks[ALIGN_POINTS], MEAN_FACE[ALIGN_POINTS])


def crop_matrix(size: int, coverage: float, centering: Centering) -> Matrix:
    """Affine taking mean-face units to pixels of a size x size crop.

    `coverage` is the share of the crop's width that the face spans jaw to jaw: 0.6 leaves room for the
    forehead and some background, 0.8 is a tight face.
    """
    side = FACE_WIDTH / coverage
    scale = size / side
    cx, cy = CENTERS[centering]
    return np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], np.float32)


def compose(outer: Matrix, inner: Matrix) -> Matrix:
    """The affine that applies `inner` then `outer`."""
    outer3 = np.vstack([outer, [0, 0, 1]]).astype(np.float64)
    inner3 = np.vstack([inner, [0, 0, 1]]).astype(np.float64)
    return (outer3 @ inner3)[:2].astype(np.float32)


def align_matrix(landmarks: Landmarks, size: int, coverage: float, centering: Centering) -> Matrix:
    """Affine taking source pixels to pixels of the aligned size x size crop."""
    return compose(crop_matrix(size, coverage, centering), to_mean_face(landmarks))


def cut(image: Frame, matrix: Matrix, size: int, fast: bool = False) -> Frame:
    """The (size, size) crop that `matrix` (image pixels -> crop pixels) maps out of `image`.

    Where the crop enlarges the image, it is sampled bicubically. Where it shrinks it, it is warped
    bicubically at an integer multiple k of its size (an enlargement: nothing folds) and brought down by
    k with a Lanczos filter, which passes what the crop can hold and stops what it cannot: a plain warp
    samples without a low-pass and aliases (HD faces extracted that way kept 1.32-1.55x the Laplacian
    variance of their area average: folded noise, not detail; bench/extract_alias.py), and the bilinear
    warp and box average this replaced blurred twice (0.48-0.62x of a Lanczos resize's Laplacian variance
    at scales 0.95-0.63, where this keeps 0.90-1.00x, and less of the moire: bench/cut.py).
    Extraction, training, conversion and evaluation all cut with this, so the model is shown the same
    pixels for the same face on every path.

    `fast`: the bilinear warp and box average instead (7-13x cheaper, soft, more moire), for crops that are
    only compared with each other, such as the tracker's 32 px thumbnails (`track.thumbnail`).
    """
    k = max(1, math.ceil(1 / matrix_scale(matrix) - 1e-3))  # image pixels per crop pixel, rounded up
    if k == 1:
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    # PIL's resize maps pixel centres x_big -> (x_big + 0.5) / k - 0.5, as cv2's does
    up = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2]], np.float32)
    flags = cv2.INTER_LINEAR if fast else cv2.INTER_CUBIC
    big = cv2.warpAffine(image, compose(up, matrix), (size * k, size * k), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA) if fast else lanczos_down(big, size)


def lanczos_down(image: np.ndarray, size: int) -> np.ndarray:
    """`image` resized to (size, size) by PIL's antialiasing Lanczos filter, in its own dtype: uint8 RGB or
    grey as PIL's images, anything else channel by channel in float32 (integers rounded and clipped, since
    the filter overshoots at hard edges)."""
    if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] == 3):
        return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))
    planes = image[..., None] if image.ndim == 2 else image
    resized = [
        Image.fromarray(np.ascontiguousarray(planes[..., c], np.float32)).resize((size, size), Image.Resampling.LANCZOS)
        for c in range(planes.shape[2])
    ]
    out = np.stack([np.asarray(r) for r in resized], -1).reshape((size, size, *image.shape[2:]))
    if np.issubdtype(image.dtype, np.integer):
        limits = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), limits.min, limits.max)
    return out.astype(image.dtype)


def box_from_landmarks(landmarks: Landmarks, to_mean: Matrix | None = None) -> Box:
    """The detector-style box these landmarks imply: the mean face's unit square mapped into the image.

    The box is axis-aligned (dlib's predictor takes no rotation): its centre is the image of the unit
    square's centre and its side the image of a unit length. Pass `to_mean_face(landmarks)` if you have it.
    """
    to_image = invert(to_mean_face(landmarks) if to_mean is None else to_mean)
    cx, cy = transform_points(np.array([[0.5, 0.5]]), to_image)[0]
    half = matrix_scale(to_image) / 2
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))
