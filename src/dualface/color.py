"""Colour transfer: make the swapped face take the source face's colour and light before it is pasted.

Each transfer is split into `stats` (numbers that describe an image's colours inside the face mask) and
`apply` (move an image from its statistics to wanted ones). Splitting them is what lets conversion smooth
the statistics over neighbouring frames, so the colour of the face does not pump from frame to frame.

- `avg`: shift the mean of each RGB channel.
- `rct`: Reinhard et al., "Color Transfer between Images" (2001): mean and spread of each channel in Lab.
- `skin`: `rct`'s lightness; a/b take the mean shift only (no spread matching), each pixel in proportion to
  its chroma against the face's mean chroma: skin all of it, grey (hair, brows, the whites of the eyes,
  deep shadows) none. `rct` moves every pixel by the same a/b, which paints what is grey with the
  difference between two skins: the purple hair of a pale face recoloured to a darker one, the green brows
  of the reverse. Scaling chroma instead keeps grey grey but makes lips, already the reddest, redder still.
- `mkl`: Pitie and Kokaram, "The linear Monge-Kantorovitch linear colour mapping" (2007), DeepFaceLab's
  `mkl`, in Lab: the whole covariance, not each channel's spread alone, so how chroma goes with lightness
  is the reference's too. `rct` keeps the drawn skin's own: the creases of a dark, warm face stay
  warmer than its cheeks after `rct` and read as orange streaks on a pale one.
- `hist`: match each RGB channel's histogram (through 33 quantiles, so it can be smoothed and is robust to
  a few stray pixels).
"""

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

QUANTILES = np.linspace(0, 1, 33)
# Bounds on every transfer's gain: a face that is nearly flat in one channel would have its noise blown up.
GAIN = (0.5, 2.0)


def _inside(mask: np.ndarray) -> np.ndarray | None:
    """The uint8 mask of the pixels to measure (`mask` > 0.5), or None (every pixel) if it is (nearly) empty."""
    inside = (mask > 0.5).astype(np.uint8)
    return inside if cv2.countNonZero(inside) >= 16 else None


def _pixels(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, 3) float32 pixels of `image` inside `mask` (`_inside`)."""
    inside = _inside(mask)
    return image.reshape(-1, 3) if inside is None else image[inside > 0]


def _mean_std(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # OpenCV's masked statistics: on a 128 px face 20x faster than numpy's mean and std of the gathered
    # pixels, which cost convert's compositing 4 ms a frame.
    mean, std = cv2.meanStdDev(image, mask=_inside(mask))
    return mean[:, 0].astype(np.float32), std[:, 0].astype(np.float32)


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB)  # float32 RGB in [0, 1] -> L in [0, 100], a/b around 0


def mean_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _mean_std(image, mask)[0]


def mean_apply(image: np.ndarray, stats: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    return np.clip(image + (wanted - stats), 0, 1)


def lab_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.concatenate(_mean_std(_lab(image), mask))


def lab_apply(image: np.ndarray, stats: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    lab = _lab(image)
    gain = wanted[3:] / np.maximum(stats[3:], 1e-3)
    lab = (lab - stats[:3]) * np.clip(gain, *GAIN) + wanted[:3]
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB), 0, 1)


def skin_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`lab_stats` and the mean chroma inside `mask` (7 numbers)."""
    lab = _lab(image)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return np.append(np.concatenate(_mean_std(lab, mask)), np.float32(cv2.mean(chroma, mask=_inside(mask))[0]))


def skin_apply(image: np.ndarray, stats: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    lab = _lab(image)
    gain = np.clip(wanted[3] / max(stats[3], 1e-3), *GAIN)
    lab[..., 0] = (lab[..., 0] - stats[0]) * gain + wanted[0]
    # The mean chroma, not the length of the mean a/b: a mask that mixes hues (a blue light, a teal shirt)
    # shortens the mean vector, and every pixel but an exact grey would take the whole shift.
    share = np.clip(np.hypot(lab[..., 1], lab[..., 2]) / max(float(stats[6]), 1e-3), 0, 1)
    lab[..., 1:] += share[..., None] * (wanted[1:3] - stats[1:3])
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB), 0, 1)


def covariance_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The Lab mean and covariance inside `mask` (12 numbers): an average of frames' is still a covariance."""
    lab = _pixels(_lab(image), mask).astype(np.float64)
    return np.concatenate([lab.mean(0), np.cov(lab, rowvar=False).ravel()]).astype(np.float32)


def _sqrt(matrix: np.ndarray, power: float = 0.5) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.maximum(values, 1e-6) ** power) @ vectors.T


def covariance_apply(image: np.ndarray, stats: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    eye = np.eye(3)
    # A floor of 1 (Lab units squared) under each variance: a channel that is nearly flat is not blown up.
    have, want = stats[3:].reshape(3, 3) + eye, wanted[3:].reshape(3, 3) + eye
    root, inverse = _sqrt(have), _sqrt(have, -0.5)
    mapping = inverse @ _sqrt(root @ want @ root) @ inverse  # the least-moving linear map from one to the other
    values, vectors = np.linalg.eigh(mapping)  # symmetric: its gains are its eigenvalues
    mapping = (vectors * np.clip(values, *GAIN)) @ vectors.T
    lab = (_lab(image) - stats[:3]) @ mapping.T.astype(np.float32) + wanted[:3]
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB), 0, 1)


def quantile_stats(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.quantile(_pixels(image, mask), QUANTILES, axis=0).T  # (3, 33)


def quantile_apply(image: np.ndarray, stats: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    out = np.empty_like(image)
    for c in range(3):
        # np.interp needs increasing x: quantiles can tie on flat images, so nudge them apart.
        x = stats[c] + np.arange(len(QUANTILES)) * 1e-6
        out[..., c] = np.interp(image[..., c], x, wanted[c])
    return np.clip(out, 0, 1)


@dataclass(frozen=True)
class ColorTransfer:
    stats: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (float32 RGB image, mask) -> statistics
    apply: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (image, its stats, wanted) -> image


COLOR_TRANSFERS: dict[str, ColorTransfer | None] = {
    "none": None,
    "avg": ColorTransfer(mean_stats, mean_apply),
    "rct": ColorTransfer(lab_stats, lab_apply),
    "skin": ColorTransfer(skin_stats, skin_apply),
    "mkl": ColorTransfer(covariance_stats, covariance_apply),
    "hist": ColorTransfer(quantile_stats, quantile_apply),
}


def transfer_color(name: str, image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`image` (float32 RGB in [0, 1]) recoloured to match `reference` inside `mask`, in one call."""
    method = COLOR_TRANSFERS[name]
    if method is None:
        return image
    return method.apply(image, method.stats(image, mask), method.stats(reference, mask))
