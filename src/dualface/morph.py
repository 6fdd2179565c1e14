"""Morph: the drawn face's proportions moved part of the way to the source face's (`convert --morph`).

A decoder draws its own person's proportions (brow height, eye spacing, where the lips sit) on every
frame: measured on the s1/Obama pair, nearly all of a swap's landmark error is that fixed offset, and
little is pose or expression not followed ("Where a swap's landmark error lies"). DeepFaceLab's AMP
model exposes the same trade as its morph factor. Here it is done after drawing, without retraining: the
landmarks of the faces drawn for the frames `convert` samples anyway, and the source's landmarks on the
same crops, give each point's median offset; a thin-plate spline through those offsets, pinned at the
crop's border, warps every drawn face (and its learned mask) `amount` of the way. One warp for the whole
video: per-frame fits would make the face shimmer with the fitting noise.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from dualface.metrics import refit

BORDER_PINS = 8  # points per crop side that the warp keeps in place, so the paste's edge never moves
SMOOTHING = 1.0  # thin-plate regularisation (px^2): mean offsets of few faces are not exact


def drawn_landmarks(drawn: np.ndarray, hints: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks fitted on (N, S, S, 3) drawn faces (float in [0, 1]), each fit started from the
    box its source face's landmarks `hints` imply and then from its own, as the tracker starts a face."""
    pixels = (np.clip(drawn, 0, 1) * 255).round().astype(np.uint8)
    found = [refit(image, hint) for image, hint in zip(pixels, hints, strict=True)]
    return np.array(found, np.float32).reshape(-1, 68, 2)


def _kernel(r2: np.ndarray) -> np.ndarray:
    return 0.5 * r2 * np.log(np.maximum(r2, 1e-12))  # r^2 log r, from squared distances


def thin_plate(points: np.ndarray, values: np.ndarray, at: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """The thin-plate spline through (P, 2) `points` with (P, 2) `values`, evaluated at (Q, 2) `at`."""
    n = len(points)
    k = _kernel(((points[:, None] - points[None]) ** 2).sum(-1)) + smoothing * np.eye(n)
    p = np.hstack([np.ones((n, 1)), points])
    system = np.block([[k, p], [p.T, np.zeros((3, 3))]])
    weights = np.linalg.solve(system, np.vstack([values, np.zeros((3, 2))]))
    u = _kernel(((at[:, None] - points[None]) ** 2).sum(-1))
    return u @ weights[:n] + np.hstack([np.ones((len(at), 1)), at]) @ weights[n:]


def _pins(size: int) -> np.ndarray:
    edge = np.linspace(0, size - 1, BORDER_PINS + 1)[:-1]
    last = np.full_like(edge, size - 1)
    zero = np.zeros_like(edge)
    return np.concatenate(
        [np.stack(a, 1) for a in ((edge, zero), (last, edge), (size - 1 - edge, last), (zero, size - 1 - edge))]
    )


@dataclass
class Morph:
    """A fixed warp of (S, S) drawings: the output's pixel (y, x) samples the drawing at
    (map_y[y, x], map_x[y, x])."""

    map_x: np.ndarray  # (S, S) float32
    map_y: np.ndarray
    offset: float  # mean distance the landmarks move, px of the model's crop

    @classmethod
    def between(cls, drawn: np.ndarray, source: np.ndarray, amount: float, size: int) -> "Morph":
        """The warp that moves the (68, 2) `drawn` landmarks `amount` of the way to the `source`
        ones (both in crop pixels) in an (S, S) crop whose border stays put."""
        moved = drawn + amount * (source - drawn)
        pins = _pins(size)
        # Backward: from where each point is to be, to where it was drawn, which is what remap samples.
        points, values = np.vstack([moved, pins]), np.vstack([drawn, pins])
        grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2).astype(np.float64)
        at = thin_plate(points, values, grid).reshape(size, size, 2).astype(np.float32)
        offset = float(np.linalg.norm(moved - drawn, axis=1).mean())
        return cls(np.ascontiguousarray(at[..., 0]), np.ascontiguousarray(at[..., 1]), offset)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """An (S, S[, C]) float32 drawing or mask in [0, 1], warped."""
        # Bicubic: a bilinear remap at sub-pixel offsets blurs the finest octave the model draws (measured:
        # the swap's sharpness 0.87x -> 0.62x at --morph 0.5)
        out = cv2.remap(image, self.map_x, self.map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        return np.clip(out, 0, 1)
