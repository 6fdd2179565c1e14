"""Compositing: a drawn face back into its frame. The mask (from landmarks or the model's mask head,
eroded and feathered inward), the colour transfer onto the source face's statistics, and the blend, each
a table entry (`masks.MASKS`, `color.COLOR_TRANSFERS`, `BLENDS`).

`convert` and `evaluate` (whose static-swap control must go through the very same paste) both use it.
Temporal smoothing keeps a `TrackState` per tracked face: the mask and the colour statistics are running
averages over the frames before, in the face's own aligned coordinates, so head motion doesn't smear them.
"""

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from dualface.align import align_matrix, compose, cut, invert, transform_points
from dualface.color import COLOR_TRANSFERS
from dualface.config import PasteConfig
from dualface.errors import DualfaceError
from dualface.masks import MASKS, hair
from dualface.types import Frame, Landmarks, Matrix

MASK_SIZE = 256  # masks are drawn and feathered in an aligned crop this large, then warped into the frame


@dataclass
class Face:
    """A face to swap on one frame."""

    track: int
    landmarks: Landmarks  # source pixels
    matrix: Matrix  # source pixels -> model crop pixels
    crop: np.ndarray  # (S, S, 3) uint8: the model's input
    swapped: np.ndarray | None = None  # (S, S, 3) float32 in [0, 1]: the decoder's drawing
    learned_mask: np.ndarray | None = None  # (S, S) float32, with the model's mask head


@dataclass
class TrackState:
    """What temporal smoothing carries from one frame to the next, per tracked face."""

    mask: np.ndarray | None = None
    stats: tuple[np.ndarray, np.ndarray] | None = None  # colour statistics of (source, swapped)


def model_input(
    frame: Frame, landmarks: Landmarks, size: int, coverage: float, centering: str
) -> tuple[Matrix, np.ndarray]:
    """The alignment matrix (frame pixels -> crop pixels) and the (S, S, 3) crop the model takes, cut as
    training's faces are (`align.cut`)."""
    matrix = align_matrix(landmarks, size, coverage, centering)
    return matrix, cut(frame, matrix, size)


def _scale(factor: float) -> np.ndarray:
    return np.array([[factor, 0, 0], [0, factor, 0]], np.float32)


def face_mask(face: Face, cfg: PasteConfig, model_size: int) -> np.ndarray:
    """The blend mask in MASK_SIZE crop pixels (float32 in [0, 1]), eroded and feathered."""
    if cfg.mask == "learned" and face.learned_mask is None:
        raise DualfaceError("--mask learned needs a model trained with a mask head (--learn-mask, the hd preset)")
    learned = None
    if face.learned_mask is not None and cfg.mask in ("learned", "auto"):
        learned = cv2.resize(face.learned_mask, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_LINEAR)
        learned = (learned > 0.5).astype(np.float32)
    if cfg.mask == "learned":
        mask = learned
    else:
        in_crop = transform_points(face.landmarks, face.matrix)
        points = in_crop * (MASK_SIZE / model_size)
        mask = MASKS["extended" if cfg.mask == "auto" else cfg.mask](points, MASK_SIZE)
        if learned is not None:
            # The source's face outline, but only where the decoder drew a face: a target whose face is
            # narrower than the source's is drawn with its own backdrop at the sides, which must not be pasted.
            mask = mask * learned
        if cfg.hair and face.swapped is not None:
            # Looked for at the drawn face's own size, where its detail ends: 4x cheaper than at the mask's
            found = hair(face.swapped, in_crop)
            mask = mask * (1 - cv2.resize(found, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_LINEAR))
    if cfg.erode:
        radius = max(1, round(abs(cfg.erode) / 100 * MASK_SIZE))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = (cv2.erode if cfg.erode > 0 else cv2.dilate)(mask, kernel)
    # The extended hull, or a grown mask, reaches past the crop's edge: close the mask there, after any
    # growing (before it, growing filled the border back in and left a hard line across the forehead), so
    # the feather runs along the crop's edge too.
    mask[[0, -1], :] = 0
    mask[:, [0, -1]] = 0
    if cfg.feather:
        # Feather inward, so the soft edge never reaches past the hull onto the background.
        radius = max(1, round(cfg.feather / 100 * MASK_SIZE))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (radius + 1, radius + 1))
        mask = cv2.GaussianBlur(cv2.erode(mask, kernel), (0, 0), radius / 2)
    return mask


def recolor(face: Face, mask: np.ndarray, cfg: PasteConfig, state: TrackState) -> np.ndarray:
    """The swapped face with the source face's colour (statistics averaged over frames when smoothing)."""
    method = COLOR_TRANSFERS[cfg.color]
    assert face.swapped is not None
    if method is None:
        return face.swapped
    size = face.swapped.shape[0]
    small = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    source = face.crop.astype(np.float32) / 255
    stats = (method.stats(source, small), method.stats(face.swapped, small))
    if cfg.smooth and state.stats is not None:
        w = cfg.smooth_weight
        stats = (w * stats[0] + (1 - w) * state.stats[0], w * stats[1] + (1 - w) * state.stats[1])
    state.stats = stats
    return method.apply(face.swapped, stats[1], stats[0])


SHARPEN_SIGMA = 1.0  # px of a 128 px face: the finest octave the model draws


def sharpen(drawn: np.ndarray, amount: float) -> np.ndarray:
    """`drawn` + amount x (`drawn` - its Gaussian blur): an unsharp mask at the model's own size."""
    if amount <= 0:
        return drawn
    blurred = cv2.GaussianBlur(drawn, (0, 0), SHARPEN_SIGMA * drawn.shape[0] / 128)
    return np.clip(drawn + amount * (drawn - blurred), 0, 1)


def _alpha(frame: Frame, region: np.ndarray, face: np.ndarray, alpha: np.ndarray, at: tuple[int, int]) -> None:
    # OpenCV's weighted sum, in SIMD on uint8: measured 0.9 ms on a 720p face where numpy's float arithmetic took 1.7
    region[:] = cv2.blendLinear(face, region, alpha, 1 - alpha)


def _poisson(frame: Frame, region: np.ndarray, face: np.ndarray, alpha: np.ndarray, at: tuple[int, int]) -> None:
    binary = (alpha > 0.5).astype(np.uint8) * 255
    binary[[0, -1], :] = 0  # seamlessClone needs the mask off the patch's border
    binary[:, [0, -1]] = 0
    ys, xs = np.nonzero(binary)
    if len(xs) < 16:
        return
    centre = (at[0] + (xs.min() + xs.max() + 1) // 2, at[1] + (ys.min() + ys.max() + 1) // 2)
    try:
        frame[:] = cv2.seamlessClone(face, frame, binary, centre, cv2.NORMAL_CLONE)
    except cv2.error:  # a face at the frame's edge: fall back to the feathered paste
        _alpha(frame, region, face, alpha, at)


# (whole frame, its face box view, drawn face warped into the box (uint8 RGB), alpha (h, w) float32, box origin)
Blend = Callable[[Frame, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]], None]
BLENDS: dict[str, Blend] = {"alpha": _alpha, "poisson": _poisson}


def paste(frame: Frame, face: Face, drawn: np.ndarray, mask: np.ndarray, cfg: PasteConfig) -> None:
    """Warp the drawn face and its mask back into the frame (in place) and blend them there."""
    size = drawn.shape[0]
    to_frame = invert(face.matrix)
    corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float32), to_frame)
    height, width = frame.shape[:2]
    left, top = np.floor(corners.min(0)).astype(int).clip(0, [width, height])
    right, bottom = np.ceil(corners.max(0)).astype(int).clip(0, [width, height])
    if right - left < 2 or bottom - top < 2:
        return
    # Warp only into the face's box: a whole 720p frame per face would cost more than the model.
    shift = np.array([[1, 0, -left], [0, 1, -top]], np.float32)
    to_box = compose(shift, to_frame)
    box = (int(right - left), int(bottom - top))
    # uint8 at the model's size, before the warp: the blends take it so, and the crop has far fewer pixels
    face_rgb = (np.clip(drawn, 0, 1) * 255).round().astype(np.uint8)
    face_rgb = cv2.warpAffine(face_rgb, to_box, box, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, compose(to_box, _scale(size / MASK_SIZE)), box, flags=cv2.INTER_LINEAR)
    BLENDS[cfg.blend](frame, frame[top:bottom, left:right], face_rgb, alpha, (int(left), int(top)))


def composite(frame: Frame, faces: list[Face], cfg: PasteConfig, model_size: int, states: dict) -> Frame:
    """The frame with every face swapped in."""
    # A track that is not on this frame has ended (the tracker never revives one): forget its state.
    for track in set(states) - {face.track for face in faces}:
        del states[track]
    out = frame.copy()
    for face in faces:
        state = states.setdefault(face.track, TrackState())
        mask = face_mask(face, cfg, model_size)
        if cfg.smooth and state.mask is not None:
            mask = cfg.smooth_weight * mask + (1 - cfg.smooth_weight) * state.mask
        state.mask = mask
        paste(out, face, sharpen(recolor(face, mask, cfg, state), cfg.sharpen), mask, cfg)
    return out
