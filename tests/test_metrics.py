"""The measures behind `evaluate` and training's held-out figures, on real frames: they must see the
drawn face, and a useless output (a still face pasted on every frame) must fail them."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from dualface.align import align_matrix, to_mean_face
from dualface.composite import Face, composite
from dualface.config import PasteConfig
from dualface.heldout import clip_of, held_out_clips
from dualface.landmarks import mouth_opening
from dualface.metrics import (
    METRICS,
    Score,
    concordance,
    drawn_landmarks,
    face_scale,
    normalised,
    observe,
    passes,
    pearson,
    rank,
    score,
    sharpness,
    summarise,
    verdict,
)
from dualface.pose import eye_opening
from dualface.track import FaceTracker, TrackerConfig


@pytest.fixture(scope="module")
def tracked(s1_frames):
    """(frame, raw landmarks) of the bundled s1 clip, every frame."""
    tracker = FaceTracker(TrackerConfig(embed_every=0), fps=25)
    out = []
    for index, frame in enumerate(s1_frames):
        tracks = tracker.update(frame, index)
        out.append((frame, tracks[0].landmarks))
    return out


def _static(tracked):
    """The first frame's face pasted, by the conversion's own compositing, over every frame."""
    size = 128
    first_frame, first_points = tracked[0]
    matrix = align_matrix(first_points, size, 0.6, "face")
    still = cv2.warpAffine(first_frame, matrix, (size, size), flags=cv2.INTER_AREA).astype(np.float32) / 255
    frames, states = [], {}
    for frame, points in tracked:
        m = align_matrix(points, size, 0.6, "face")
        crop = cv2.warpAffine(frame, m, (size, size))
        frames.append(composite(frame, [Face(0, points, m, crop, still)], PasteConfig(), size, states))
    return frames


def test_drawn_mouth_follows_real_mouths_and_ignores_a_pasted_still(tracked):
    """On real faces the drawn-face mouth and eye opening agree with the whole-frame landmarks (measured
    0.97 and 0.9 on GRID); a still face pasted over the same frames (the floor) reads as not moving."""
    truth_mouth = np.array([mouth_opening(p) for _, p in tracked])
    truth_eyes = np.array([eye_opening(p) for _, p in tracked])
    drawn = [drawn_landmarks(frame, to_mean_face(p)) for frame, p in tracked]
    mouth = np.array([mouth_opening(d) for d in drawn])
    eyes = np.array([eye_opening(d) for d in drawn])
    assert pearson(truth_mouth, mouth) > 0.9 and concordance(truth_mouth, mouth) > 0.9
    assert pearson(truth_eyes, eyes) > 0.8
    static = [drawn_landmarks(f, to_mean_face(p)) for f, (_, p) in zip(_static(tracked), tracked, strict=True)]
    static_mouth = np.array([mouth_opening(d) for d in static])
    static_eyes = np.array([eye_opening(d) for d in static])
    assert abs(concordance(mouth, static_mouth)) <= 0.15
    assert abs(concordance(eyes, static_eyes)) <= 0.15
    assert static_mouth.std() < 0.25 * mouth.std()


def test_landmark_error_splits_into_a_shared_shape_and_what_was_not_followed(tracked):
    """A face drawn with its mouth higher on every frame (another person's proportions) is all shape and
    no tracking error; the pasted still (the floor) follows no expression: its tracking error is its own."""
    seen = [observe(frame, p) for frame, p in tracked]
    up = np.zeros((68, 2))
    up[48:68, 1] = -0.1 * np.linalg.norm(tracked[0][1][36:42].mean(0) - tracked[0][1][42:48].mean(0))
    higher = [(s, replace(s, fitted=s.fitted + up)) for s in seen]
    assert summarise("landmark_shape", higher) == pytest.approx(0.1 * 20 / 68, rel=0.1)
    assert summarise("landmark_tracking", higher) < 0.002
    assert summarise("landmark_error", higher) == pytest.approx(summarise("landmark_shape", higher), rel=0.05)
    static = [(s, observe(f, p)) for s, f, (_, p) in zip(seen, _static(tracked), tracked, strict=True)]
    itself = [(s, s) for s in seen]
    assert summarise("landmark_shape", itself) == summarise("landmark_tracking", itself) == 0
    floor, followed = summarise("landmark_tracking", static), summarise("landmark_tracking", higher)
    assert floor > 0.01 and floor > 5 * followed
    assert score("landmark_tracking", floor, floor, 0.0).normalised == 0


def test_sharpness_does_not_jump_with_the_measuring_size(tracked):
    # A face read at sizes 1% apart must read about the same: at the face's full size it read 0.6x or 1.0x
    # of itself as the crop rounded below or above the face's own size (two resampling paths).
    for frame, points in tracked[::15]:
        read = [sharpness(frame, to_mean_face(points), face_scale(points) * f) for f in (0.99, 0.995, 1, 1.005, 1.01)]
        assert min(read) > 0.9 * max(read)


def test_agreement_counts_amplitude_and_a_constant_is_undefined():
    t = np.linspace(0, 6, 50)
    a = np.sin(t)
    assert concordance(a, a) == pytest.approx(1)
    assert concordance(a, 0.2 * a) == pytest.approx(2 * 0.2 / 1.04)  # follows perfectly, a fifth as wide
    assert pearson(a, 0.2 * a) == pytest.approx(1)
    assert concordance(a, np.full(50, 0.3)) is None and pearson(np.ones(4), np.arange(4.0)) is None
    assert rank(None) < rank(-1.0) < rank(0.0)
    assert rank(None, "lower") < rank(5.0, "lower") < rank(1.0, "lower")
    assert normalised(0.5, 0.0, 1.0) == 0.5 and normalised(0.02, 0.1, 0.0) == pytest.approx(0.8)
    assert normalised(0.5, None, 1.0) is None and normalised(0.5, 1.0, 1.0) is None


def test_verdict_needs_every_bar_and_undefined_fails():
    good = {
        "source_identity": score("source_identity", 1.0),
        "identity_transfer": score("identity_transfer", 1.0),
        "identity_gap": score("identity_gap", 1.1, ceiling=1.0),
        "mouth": score("mouth", 0.8, 0.0, 1.0),
        "eyes": score("eyes", 0.7, 0.0, 1.0),
        "landmark_error": score("landmark_error", 0.03, 0.09, 0.0),
        "sharpness": score("sharpness", 0.7, ceiling=1.0),
        "grain": score("grain", 0.8, ceiling=1.0),
        "flicker_ratio": score("flicker_ratio", 1.0, ceiling=1.0),
    }
    assert verdict(good) == (True, [])
    # a clip of the target (or a wrong --to) copied through: every other measure would pass
    assert verdict({**good, "source_identity": score("source_identity", 0.2)}) == (False, ["source_identity"])
    # eyes open through every blink (a still face's): failed; a source that never blinks fails no one
    assert verdict({**good, "eyes": score("eyes", 0.02, 0.0, 1.0)}) == (False, ["eyes"])
    still = score("eyes", 0.02, 0.0, 1.0)
    still.still = True  # the source's eyes never blink: jitter is all there is to follow
    assert verdict({**good, "eyes": still}) == (True, [])
    assert verdict({**good, "eyes": score("eyes", None, 0.0, 1.0)}) == (False, ["eyes"])  # the swap's alone still
    # grain lifts the noise floor of a blurred face; detail does not
    assert verdict({**good, "grain": score("grain", 2.1, ceiling=1.0)}) == (False, ["grain"])
    # the blank oval of the bug report: right identity, "mouth r 0.5" raw, but no better than the floor
    blank = {**good, "mouth": score("mouth", 0.5, 0.5, 1.0)}
    assert verdict(blank) == (False, ["mouth"])
    assert verdict({**good, "mouth": Score(None)}) == (False, ["mouth"])
    assert verdict({k: v for k, v in good.items() if k != "sharpness"}) == (False, ["sharpness"])
    # sharper than the person's own faces by half again: halos or grain, not detail
    assert verdict({**good, "sharpness": score("sharpness", 1.4, ceiling=1.0)}) == (True, [])
    assert verdict({**good, "sharpness": score("sharpness", 1.6, ceiling=1.0)}) == (False, ["sharpness"])
    sharpened = Score(0.7, ceiling=1.0, not_credited="pasted with --sharpen 1")
    assert verdict({**good, "sharpness": sharpened}) == (False, ["sharpness"])
    assert passes("yaw_error", score("yaw_error", 10.0)) is None  # reported, no bar
    assert all(m.usable is None or m.aim in ("higher", "lower") for m in METRICS.values())


def test_held_out_faces_are_whole_clips():
    files = [f"clip{c}_{i:06d}_0.png" for c in "abcde" for i in range(10)]
    assert clip_of(files[0]) == "clipa" and clip_of("my_clip_name_000012_1.png") == "my_clip_name"
    assert held_out_clips(files) == {"clipe"}  # the last clip, whole: 20% of the faces
    assert held_out_clips(files, share=0.4) == {"clipd", "clipe"}
    assert held_out_clips([f"one_{i:06d}_0.png" for i in range(50)]) == set()  # one clip can't be split
