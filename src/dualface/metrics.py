"""Measures of a swap, each with its controls: the pure functions behind `evaluate`, training's held-out
figures, the report and the benches.

A number that a useless output passes is worse than none, so every measure is read against two controls:
a **ceiling**, the source against itself (a perfect output), and a **floor**, a *static swap* (one fixed
face of the target pasted through the same pipeline on every frame: the right identity, sharp enough,
and useless). An expression or pose measure counts by its normalised score (value - floor) / (ceiling -
floor), not by its raw value.

Expression is measured on the face that was drawn, not on what surrounds it. dlib's landmark predictor,
run on a whole frame, follows the jaw line and the mask's outline that the source leaves around a blurry
swap (a pasted still face read mouth r 0.5 that way). Here the face is cut to an aligned crop by the
*source's* landmarks, everything outside a fixed central region of the mean face (the hull of dlib's mean
shape, shrunk to 90% about its centre, so the moving jaw of the source stays outside it) is replaced by
the region's mean colour, and the predictor is placed by the mean face's box alone. A pasted still face
then reads the same mouth on every frame. Measured on GRID s1 and the 720p White House clips: this
mouth opening follows the whole-frame landmarks of real faces at r 0.96-0.98, and a static swap's varies
with 0.04-0.17 of the source's spread.

Agreement of two series is the concordance 2 cov / (var a + var b) (Lin's concordance without its mean
term: faces of two people open their lips to different rest widths): 1 for equal series, about 0 when
one barely moves, and lower than Pearson's r when the output moves less than the source (a swapped
mouth that opens a fifth as wide scores 0.38 at r = 1). A series that does not vary is undefined (None),
never 0, and ranks below every number.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from dualface.align import (
    MEAN_FACE,
    box_from_landmarks,
    compose,
    crop_matrix,
    cut,
    invert,
    matrix_scale,
    to_mean_face,
    transform_points,
)
from dualface.landmarks import LEFT_EYE, RIGHT_EYE, mouth_opening, predict_landmarks
from dualface.pose import eye_opening, head_pose
from dualface.types import Frame, Landmarks, Matrix

MEASURE_SIZE = 256  # faces are cut to an aligned crop this large before landmarks are fitted on them
MEASURE_CROP = crop_matrix(MEASURE_SIZE, 0.6, "face")  # mean-face units -> measure-crop pixels
REGION_SHRINK = 0.9
CONSTANT = 1e-6  # a series whose standard deviation is below this does not vary


def _shrunk(shrink: float) -> np.ndarray:
    """The mean face's landmarks drawn in towards their centre: a region well inside the face."""
    centre = MEAN_FACE.mean(0)
    return centre + (MEAN_FACE - centre) * shrink


def _region(size: int, to_crop: Matrix) -> np.ndarray:
    points = transform_points(_shrunk(REGION_SHRINK), to_crop)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return mask.astype(bool)


REGION = _region(MEASURE_SIZE, MEASURE_CROP)
_BOX = box_from_landmarks(transform_points(MEAN_FACE, MEASURE_CROP))


def aligned_crop(image: Frame, to_mean: Matrix, to_crop: Matrix, size: int) -> Frame:
    """The aligned (size, size, 3) crop, cut as the model's are (`align.cut`)."""
    return cut(image, compose(to_crop, to_mean), size)


def drawn_landmarks(image: Frame, to_mean: Matrix) -> Landmarks:
    """The 68 landmarks of the face drawn inside the fixed central region, in mean-face units.

    Args:
        image: a frame, or an aligned face crop.
        to_mean: image pixels -> mean-face units (`align.to_mean_face` of the source's landmarks for a
            frame; the inverse of the crop's `crop_matrix` for an aligned crop).
    """
    crop = aligned_crop(image, to_mean, MEASURE_CROP, MEASURE_SIZE).copy()
    crop[~REGION] = crop[REGION].mean(0).round().astype(np.uint8)
    crop = np.ascontiguousarray(crop)
    first = predict_landmarks(crop, _BOX)
    points = predict_landmarks(crop, box_from_landmarks(first))
    return transform_points(points, invert(MEASURE_CROP))


_SHARP_REGION = _shrunk(0.8)
_FACE_WIDTH = float(MEAN_FACE[:, 0].max() - MEAN_FACE[:, 0].min())  # mean-face units
GRAIN_BAR = 1.5  # see METRICS["grain"]
SAME_SIZE = 0.98  # a face within 2% of the size it is read at is read as it is, not resampled


def sharpness(image: Frame, to_mean: Matrix, pixels_per_unit: float, extracted_at: float | None = None) -> float:
    """Variance of the Laplacian of the grey face inside the central region (`face_laplacian`)."""
    return detail(face_laplacian(image, to_mean, pixels_per_unit, extracted_at))[0]


def grain(image: Frame, to_mean: Matrix, pixels_per_unit: float, extracted_at: float | None = None) -> float:
    """The face's noise floor, read as `sharpness` is (`detail`)."""
    return detail(face_laplacian(image, to_mean, pixels_per_unit, extracted_at))[1]


def detail(laplacian: np.ndarray) -> tuple[float, float]:
    """(sharpness, grain) of a face's Laplacian: its variance, and its median magnitude, the noise floor.
    Detail is sparse (eyes, brows, lips: a few pixels with large values carry the variance), grain is on
    every pixel: a blurred face under grain reads as sharp as a real one by variance, at twice its floor
    and more (`tests/test_evaluate.py`)."""
    return float(laplacian.var()), float(np.median(np.abs(laplacian)))


def face_laplacian(
    image: Frame, to_mean: Matrix, pixels_per_unit: float, extracted_at: float | None = None
) -> np.ndarray:
    """The Laplacian of the grey face inside the central region, on the face's own pixel grid,
    area-averaged down to `pixels_per_unit` (image pixels per mean-face unit) where the face is larger.

    `extracted_at`: first cut the face out at that size as extraction cuts the reference faces
    (`align.cut`, 0.6 coverage), so a frame and the extracted faces it is compared with take one path.
    Why the face's own grid: resampled near its own size, the Laplacian (which lives in the last octave
    below the pixel grid) reads the filter's sub-pixel phase, and the same frame read 0.6x or 1.0x of
    itself at measuring sizes 0.5% apart (`bench/sharpness_scale.py`).
    """
    if extracted_at is not None:
        size = max(16, round(extracted_at * _FACE_WIDTH / 0.6))
        to_crop = crop_matrix(size, 0.6, "face")
        image, to_mean = cut(image, compose(to_crop, to_mean), size), invert(to_crop)
    to_image = invert(to_mean)
    points = transform_points(_SHARP_REGION, to_image)
    height, width = image.shape[:2]
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + 5, [width, height])
    patch, points = image[y0:y1, x0:x1], points - [x0, y0]
    shrink = pixels_per_unit / matrix_scale(to_image)
    if shrink < SAME_SIZE:
        h, w = patch.shape[:2]
        to = (max(1, round(w * shrink)), max(1, round(h * shrink)))
        patch = cv2.resize(patch, to, interpolation=cv2.INTER_AREA)
        points = (points + 0.5) * [to[0] / w, to[1] / h] - 0.5  # cv2.resize's pixel-centre mapping
    # Grey in float: from 8-bit grey the 3x3 Laplacian takes even integers only, and a clean face's median
    # magnitude (`grain`) would move in steps of a quarter (the variance moves by under 1%).
    grey = cv2.cvtColor(np.ascontiguousarray(patch).astype(np.float32), cv2.COLOR_RGB2GRAY)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    inside = np.zeros(grey.shape, np.uint8)
    cv2.fillConvexPoly(inside, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return laplacian[inside.astype(bool)]


def face_scale(landmarks: Landmarks) -> float:
    """A face's on-screen size: image pixels per mean-face unit."""
    return matrix_scale(invert(to_mean_face(landmarks)))


def interocular(landmarks: Landmarks) -> float:
    return float(np.linalg.norm(landmarks[RIGHT_EYE].mean(0) - landmarks[LEFT_EYE].mean(0)))


def refit(frame: Frame, hint: Landmarks) -> Landmarks:
    """Landmarks fitted on the whole frame from the box `hint` implies, then once more from their own box
    (as the tracker starts a face): the output is measured where the source face was, not copied from it."""
    frame = np.ascontiguousarray(frame)
    first = predict_landmarks(frame, box_from_landmarks(hint))
    return predict_landmarks(frame, box_from_landmarks(first))


@dataclass
class Observed:
    """One face on one frame as the measures see it."""

    drawn: Landmarks  # fitted inside the fixed central region (mean-face units): expression
    fitted: Landmarks  # fitted on the whole frame (pixels): shape and pose
    sharpness: float
    image_size: tuple[int, int]  # (height, width)
    grain: float = 0.0  # the noise floor, read where sharpness is


def observe(frame: Frame, source_landmarks: Landmarks, max_scale: float | None = None) -> Observed:
    """Measure the face at the source's landmarks on `frame` (the source itself, a swap, or a control).
    Sharpness is read at the face's on-screen size, or at `max_scale` where that is smaller (the size of
    the reference faces it is compared with: enlarging those would blur them and flatter the output); with
    `max_scale`, the face is first cut out at that size, as the reference faces were extracted."""
    to_mean = to_mean_face(source_landmarks)
    scale = face_scale(source_landmarks)
    sharp, floor = detail(face_laplacian(frame, to_mean, min(scale, max_scale or scale), max_scale))
    return Observed(drawn_landmarks(frame, to_mean), refit(frame, source_landmarks), sharp, frame.shape[:2], floor)


# ---------------------------------------------------------------------------------------------------------
# agreement of series


def concordance(a: np.ndarray, b: np.ndarray) -> float | None:
    """2 cov(a, b) / (var a + var b); None when either series does not vary."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < CONSTANT or b.std() < CONSTANT:
        return None
    a, b = a - a.mean(), b - b.mean()
    return float(2 * (a * b).mean() / (a.var() + b.var()))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < CONSTANT or b.std() < CONSTANT:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def normalised(value: float | None, floor: float | None, ceiling: float | None) -> float | None:
    """(value - floor) / (ceiling - floor): 0 is the useless static swap, 1 the source itself. Works for
    measures where lower is better too (the signs cancel). Undefined when a term is, or floor == ceiling."""
    if value is None or floor is None or ceiling is None or abs(ceiling - floor) < 1e-9:
        return None
    return (value - floor) / (ceiling - floor)


def rank(value: float | None, aim: Literal["higher", "lower"] = "higher") -> float:
    """A sort key where undefined ranks below every number."""
    if value is None or not np.isfinite(value):
        return -np.inf
    return value if aim == "higher" else -value


# ---------------------------------------------------------------------------------------------------------
# the table


def _pairs(pick: Callable[[Observed], float]) -> Callable[[Observed, Observed], tuple[float, float]]:
    return lambda src, out: (pick(src), pick(out))


def _pose(axis: int) -> Callable[[Observed, Observed], float]:
    return lambda src, out: float(
        abs(head_pose(out.fitted, out.image_size)[axis] - head_pose(src.fitted, src.image_size)[axis])
    )


def _landmark_error(src: Observed, out: Observed) -> float:
    return float(np.linalg.norm(out.fitted - src.fitted, axis=1).mean() / max(interocular(src.fitted), 1e-6))


def landmark_offsets(src: Observed, out: Observed) -> np.ndarray:
    """The output's 68 landmarks minus the source's, in the source's mean-face frame over its inter-ocular
    distance (flat, 136 numbers): the same offset on every frame is the drawn person's face shape."""
    to_mean = to_mean_face(src.fitted)
    seen = transform_points(src.fitted, to_mean)
    return ((transform_points(out.fitted, to_mean) - seen) / max(interocular(seen), 1e-6)).ravel()


def _shape_offset(values: np.ndarray) -> float | None:
    """Landmark error of the mean offset alone: what the output keeps on every frame (a face shape)."""
    if not len(values):
        return None
    return float(np.linalg.norm(values.reshape(len(values), -1, 2).mean(0), axis=1).mean())


def _tracking_error(values: np.ndarray) -> float | None:
    """Landmark error once the mean offset is taken out: pose and expression the output did not follow."""
    if not len(values):
        return None
    offsets = values.reshape(len(values), -1, 2)
    return float(np.linalg.norm(offsets - offsets.mean(0), axis=2).mean())


def agreement(values: np.ndarray) -> float | None:
    return concordance(values[:, 0], values[:, 1])


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _sharpness_in_place(values: np.ndarray) -> float | None:
    """Median sharpness of the output's face over the source's, on the same frames."""
    source = float(np.median(values[:, 0]))
    return float(np.median(values[:, 1])) / source if source > 0 else None


@dataclass(frozen=True)
class Metric:
    label: str
    aim: Literal["higher", "lower"]
    # (source, output) -> a per-frame value; None for measures of the whole video (identity, flicker,
    # sharpness against the target's own faces), which `evaluate` computes itself
    per_frame: Callable[[Observed, Observed], float | tuple[float, float]] | None = None
    summary: Callable[[np.ndarray], float | None] | None = None  # per-frame values -> the video's value
    normalise: bool = False  # read against the static-swap floor and the source-itself ceiling
    usable: float | None = None  # the bar for a usable swap...
    bar_on: Literal["raw", "normalised"] = "raw"  # ...on the raw value or on the normalised score
    most: float | None = None  # where more is better only up to a point: past this the output is not usable
    still_passes: bool = False  # where the source itself does not move (`Score.still`), not failed
    unit: str = ""


METRICS: dict[str, Metric] = {
    "identity_transfer": Metric(
        "Identity transfer: share of embedded frames closer to the target than to the source", "higher", usable=0.95
    ),
    "source_identity": Metric(
        "Source is not the target: share of embedded source frames nearer the source identity",
        "higher",
        usable=0.5,
    ),
    "identity_gap": Metric(
        "Identity gap: distance to the target over its own real faces' (1.0: as close as the person)",
        "lower",
        usable=1.3,
    ),
    "mouth": Metric(
        "Mouth follows the source (concordance of mouth opening, drawn face only)",
        "higher",
        _pairs(lambda o: mouth_opening(o.drawn)),
        agreement,
        normalise=True,
        usable=0.6,
        bar_on="normalised",
    ),
    # Eyes that stay open through the source's blinks are a still face's (the frozen-eyes swap read 0.02,
    # a static swap 0.1-0.2 of jitter); a third of the way to the source is a low bar: hours read 0.7-0.9.
    # A source whose eyes never move has nothing to follow, and is not failed for it.
    "eyes": Metric(
        "Eyes follow the source (concordance of eye opening, drawn face only)",
        "higher",
        _pairs(lambda o: eye_opening(o.drawn)),
        agreement,
        normalise=True,
        usable=0.3,
        bar_on="normalised",
        still_passes=True,
    ),
    "landmark_error": Metric(
        "Landmark error / inter-ocular distance", "lower", _landmark_error, _mean, normalise=True, usable=0.05
    ),
    # The landmark error split in two (`bench/landmark_split.py`). A swap draws the target's features where
    # the target has them (wider brows, a higher mouth): an offset the same on every frame, which the
    # target's own real faces pasted in score too. What varies from frame to frame is what the swap did
    # not follow. Neither has a bar: the bar is on the error as a whole, which is what the eye sees.
    "landmark_shape": Metric(
        "Landmark error of the face shape (the offset every frame shares)", "lower", landmark_offsets, _shape_offset
    ),
    "landmark_tracking": Metric(
        "Landmark error of pose and expression (the shared offset taken out)",
        "lower",
        landmark_offsets,
        _tracking_error,
        normalise=True,
    ),
    # The static swap is placed by the source's own landmarks, so its pose already follows the source's:
    # the floor is shown, but a score normalised between it and 0 would be noise.
    "yaw_error": Metric("Head yaw error", "lower", _pose(0), _mean, unit="°"),
    "pitch_error": Metric("Head pitch error", "lower", _pose(1), _mean, unit="°"),
    "roll_error": Metric("Head roll error", "lower", _pose(2), _mean, unit="°"),
    # The ceiling: real faces read 0.70-1.00x their own recording's, and unsharp-masked to twice their edge
    # contrast 1.8-2.1x (`bench/sharpness_scale.py`); past 1.5x the figure is counting halos or grain.
    "sharpness": Metric(
        "Sharpness: face detail over the target's own faces at the same size",
        "higher",
        usable=0.5,
        most=1.5,
        unit="x",
    ),
    # Sharpness counts grain as detail (a blurred face under a fixed grain read 0.81x, the bar passed);
    # grain lifts the floor of every pixel, which detail does not: real faces read about 1x of their own.
    "grain": Metric(
        "Grain: the face's noise floor over the target's own faces' (median Laplacian magnitude)",
        "lower",
        usable=GRAIN_BAR,
        unit="x",
    ),
    "sharpness_in_place": Metric(
        "Sharpness over the source face it replaces",
        "higher",
        _pairs(lambda o: o.sharpness),
        _sharpness_in_place,
        unit="x",
    ),
    "flicker_ratio": Metric("Flicker: frame-to-frame change in the face, output over source", "lower", usable=1.2),
}


def summarise(name: str, pairs: list[tuple[Observed, Observed]]) -> float | None:
    """A per-frame metric's value over (source, output) observations."""
    metric = METRICS[name]
    assert metric.per_frame is not None and metric.summary is not None
    values = np.array([metric.per_frame(src, out) for src, out in pairs], np.float64)
    return metric.summary(values) if len(values) else None


@dataclass
class Score:
    """One metric of one evaluation, with its controls."""

    value: float | None
    floor: float | None = None  # the static swap's
    ceiling: float | None = None  # the source's against itself (or the target's own faces)
    normalised: float | None = None
    not_credited: str | None = None  # why the value, though measured, does not count toward the verdict
    reachable: float | None = None  # the target's own real faces pasted instead (`real_faces`): a perfect decoder
    still: bool = False  # the source itself did not move in this measure: nothing to follow (`still_passes`)

    @property
    def scored(self) -> float | None:
        return self.normalised if self.normalised is not None else self.value

    def reached(self, name: str) -> "Score":
        """The real faces' score read against the same controls: what a perfect decoder would have scored."""
        return score(name, self.reachable, self.floor, self.ceiling)


def score(name: str, value: float | None, floor: float | None = None, ceiling: float | None = None) -> Score:
    metric = METRICS[name]
    return Score(value, floor, ceiling, normalised(value, floor, ceiling) if metric.normalise else None)


def passes(name: str, s: Score) -> bool | None:
    """Whether a score clears the usable bar; None where the metric has no bar. An undefined score fails."""
    metric = METRICS[name]
    if metric.usable is None:
        return None
    value = s.normalised if metric.bar_on == "normalised" else s.value
    if metric.still_passes and s.still:
        return True
    if value is None or s.not_credited or (metric.most is not None and value > metric.most):
        return False
    return value >= metric.usable if metric.aim == "higher" else value <= metric.usable


def verdict(scores: dict[str, Score]) -> tuple[bool, list[str]]:
    """(usable, the names of the metrics that fail their bar). Every metric with a bar must be present."""
    failed = [
        name
        for name, metric in METRICS.items()
        if metric.usable is not None and not passes(name, scores.get(name, Score(None)))
    ]
    return not failed, failed


# ---------------------------------------------------------------------------------------------------------
# the record of an evaluation (written by `evaluate`, read by `report`)


@dataclass
class FrameScore:
    index: int
    mouth: tuple[float, float, float]  # mouth opening (source, output, static swap), drawn face only
    eyes: tuple[float, float, float]  # eye opening, the same
    sharpness: tuple[float, float]  # (source, output) Laplacian variance at the face's size
    landmark_error: float  # output vs source, over the inter-ocular distance
    to_target: float | None = None  # embedding distance of the output face to the target identity
    to_source: float | None = None  # ... and to the source identity
    source_to_target: float | None = None  # the same of the source's own face
    source_to_source: float | None = None


@dataclass
class VideoEvaluation:
    source: str
    output: str
    target: str  # the identity swapped in
    source_identity: str | None
    checkpoint: str | None  # the checkpoint that made the output (recorded by convert), else the one used here
    step: int | None
    frames: int
    frames_scored: int  # frames with a face in the source
    scores: dict[str, Score]  # metric name -> value, floor, ceiling, normalised
    usable: bool
    failed: list[str]  # metrics below their usable bar
    mean_to_target: float | None
    mean_to_source: float | None
    target_to_itself: float | None  # mean distance of the target's own faces to its centroid
    flicker_source: float  # mean absolute frame-to-frame change inside the face, 0-255 levels
    flicker_output: float
    reference_faces: str | None  # the target faces sharpness and the identity gap were read against
    reconstruction: dict[str, dict[str, float]] = field(default_factory=dict)  # identity -> ssim, psnr
    paste: dict[str, Any] = field(default_factory=dict)  # the paste settings the conversion recorded
    real_faces: int | None = None  # faces the real-faces control replaced (None: not run)
    out_of_reach: list[str] = field(default_factory=list)  # failed measures the target's real faces fail too
    per_frame: list[FrameScore] = field(default_factory=list)
    changes: list[list[float]] = field(default_factory=list)  # (frame, source change, output change): flicker

    def value(self, name: str) -> float | None:
        s = self.scores.get(name)
        return None if s is None else s.value

    def headline(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("per_frame")
        out.pop("changes")
        return out
