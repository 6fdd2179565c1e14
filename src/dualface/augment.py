"""Training augmentation: sample the random parameters, then apply them, so one draw moves the face, its
landmarks and so its mask together.

The classic deepfakes recipe: the *input* is randomly warped on a coarse grid while the target stays
unwarped, which teaches the decoder to draw a clean face from a code rather than copy pixels; both get
the same flip, small rotation/scale/shift and colour jitter (in Lab, so lightness and colour move apart).
With `recolor`, half the faces are first recoloured to a random face of another identity (DeepFaceLab's
ct_mode), so each decoder also learns its person under the other's skin tone and light, which is what it is
given to draw at conversion. With `input_recolor`, a share of faces have their *input* alone recoloured to a
random face of any identity, the target keeping its colours, as the random warp moves the input alone: the
code should say what the face does, not how it was lit.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from dualface.color import COLOR_TRANSFERS
from dualface.config import AugmentConfig
from dualface.data import FaceSet
from dualface.expression import openings
from dualface.masks import MASKS, region_weights
from dualface.types import Frame, Mask

# Every augmentation draw lands the face at a random sub-pixel offset. Bilinear sampling there averages
# neighbours: the targets kept 0.56-0.76x the Laplacian variance of the plain crop (s1, Obama; 300 faces
# each), so the decoders learnt to draw a blur the sharpness bar then charges them for. Bicubic keeps
# 0.85-1.07x, and is what DeepFaceLab's warp samples with.
RESAMPLE = cv2.INTER_CUBIC


@dataclass
class Batch:
    """One identity's batch, as numpy arrays (the training loop turns them into tensors)."""

    inputs: np.ndarray  # (B, S, S, 3) uint8, warped
    targets: np.ndarray  # (B, S, S, 3) uint8
    masks: np.ndarray  # (B, S, S) float32 in [0, 1]
    weights: np.ndarray  # (B, S, S) float32 >= 1: eyes and mouth count more
    expressions: np.ndarray  # (B, 2) float32: the targets' mouth and eye openings (expression.py)


def affine(rng: np.random.Generator, cfg: AugmentConfig, work: int, size: int) -> tuple[np.ndarray, bool]:
    """A random similarity from the work crop to the model crop (centred), and whether to flip.

    The work crop has the model crop's pixel density over a wider field, so the identity draw is a plain
    centre crop.
    """
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    scale = 1 + rng.uniform(-cfg.zoom, cfg.zoom)
    matrix = cv2.getRotationMatrix2D((work / 2, work / 2), angle, scale)
    matrix[:, 2] += size / 2 - work / 2 + rng.uniform(-cfg.shift, cfg.shift, 2) * size
    flip = bool(rng.random() < cfg.flip)
    if flip:
        matrix = np.array([[-1, 0, size - 1], [0, 1, 0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix.astype(np.float32), flip


def random_warp(image: Frame, rng: np.random.Generator, strength: float) -> Frame:
    """Displace a 5x5 grid of control points by Gaussian noise and interpolate a smooth warp from it."""
    if strength == 0:  # the identity warp, without its draws or its resampling
        return image
    size = image.shape[0]
    offsets = rng.normal(0, strength * size, (2, 5, 5)).astype(np.float32)
    flow = [cv2.resize(o, (size, size), interpolation=cv2.INTER_CUBIC) for o in offsets]
    grid = np.mgrid[0:size, 0:size].astype(np.float32)  # (2, S, S): rows, cols
    return cv2.remap(image, grid[1] + flow[0], grid[0] + flow[1], RESAMPLE, borderMode=cv2.BORDER_REPLICATE)


def jitter_color(image: Frame, rng: np.random.Generator, cfg: AugmentConfig) -> Frame:
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 1 + rng.uniform(-cfg.lightness, cfg.lightness)
    lab[..., 1:] += rng.uniform(-cfg.color, cfg.color, 2)
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


RECOLOR_SHARE = 0.5  # the other half keep their own colours, which the decoder must still draw


def recolor(
    image: Frame, mask: Mask, others: list[FaceSet], rng: np.random.Generator, cfg: AugmentConfig, transfer: str
) -> Frame:
    """`image` recoloured, inside `mask`, to a random face of `others` (`transfer`, of color.py)."""
    other = others[rng.integers(len(others))]
    j = rng.integers(len(other))
    move = COLOR_TRANSFERS[transfer]
    reference = other.faces[j].astype(np.float32) / 255
    wanted = move.stats(reference, MASKS[cfg.mask](other.landmarks[j], reference.shape[0]))
    face = image.astype(np.float32) / 255
    return (move.apply(face, move.stats(face, mask), wanted) * 255).round().astype(np.uint8)


def sample_batch(
    faces: FaceSet,
    size: int,
    batch: int,
    rng: np.random.Generator,
    cfg: AugmentConfig,
    others: list[FaceSet] | None = None,
) -> Batch:
    """Draw `batch` faces with replacement (rare expressions more often, with `cfg.balance`) and augment
    them; `others`, the other identities, lend their colours with `cfg.recolor`."""
    work = faces.faces.shape[1]
    chances = faces.draw_probabilities(cfg.balance)
    picks = rng.integers(0, len(faces), batch) if chances is None else rng.choice(len(faces), batch, p=chances)
    inputs, targets, masks, weights, expressions = [], [], [], [], []
    for i in picks:
        matrix, _ = affine(rng, cfg, work, size)
        target = cv2.warpAffine(faces.faces[i], matrix, (size, size), flags=RESAMPLE, borderMode=cv2.BORDER_REPLICATE)
        points = faces.landmarks[i] @ matrix[:, :2].T + matrix[:, 2]
        mask = MASKS[cfg.mask](points, size)
        if cfg.recolor != "none" and others and rng.random() < RECOLOR_SHARE:  # no draws when off: runs repeat
            target = recolor(target, mask, others, rng, cfg, cfg.recolor)
        target = jitter_color(target, rng, cfg)
        targets.append(target)
        source = target
        if cfg.input_recolor and rng.random() < cfg.input_recolor:  # no draws when off: runs repeat
            transfer = cfg.recolor if cfg.recolor != "none" else "rct"
            source = recolor(target, mask, [faces, *(others or [])], rng, cfg, transfer)
        inputs.append(random_warp(source, rng, cfg.warp))
        masks.append(mask)
        weights.append(region_weights(points, size, cfg.eye_weight, cfg.mouth_weight))
        expressions.append(openings(points))
    return Batch(np.stack(inputs), np.stack(targets), np.stack(masks), np.stack(weights), np.stack(expressions))
