import numpy as np
import pytest

from dualface.config import SAME_PERSON
from dualface.identity import distance
from dualface.track import FaceTracker, OneEuroFilter, TrackerConfig


def run(frames, **settings):
    tracker = FaceTracker(TrackerConfig(**settings), fps=25)
    return tracker, [
        [(t.id, t.landmarks.copy(), t.smoothed.copy(), t.embedding) for t in tracker.update(f, i)]
        for i, f in enumerate(frames)
    ]


def test_tracks_a_talking_head_on_every_frame_with_few_detections(s1_frames):
    tracker, faces = run(s1_frames, embed_every=0)
    assert all(len(f) == 1 for f in faces)
    assert len({f[0][0] for f in faces}) == 1  # one track throughout
    assert tracker.detections_run <= len(s1_frames) // 5 + 1


def test_detect_every_frame_finds_the_same_face(s1_frames):
    tracked = run(s1_frames[:20], embed_every=0)[1]
    detected = run(s1_frames[:20], embed_every=0, detect_every=1)[1]
    for a, b in zip(tracked, detected, strict=True):
        assert np.abs(a[0][1] - b[0][1]).mean() < 3.0


def test_smoothing_removes_jitter_of_still_points(s1_frames):
    """Eyes and nose hardly move in GRID; their frame-to-frame motion is mostly landmark noise."""
    faces = run(s1_frames, embed_every=0)[1]
    raw = np.array([f[0][1] for f in faces])[:, 27:48]
    smooth = np.array([f[0][2] for f in faces])[:, 27:48]
    jitter = lambda x: np.linalg.norm(np.diff(x, axis=0), axis=2).mean()  # noqa: E731
    assert jitter(smooth) < 0.8 * jitter(raw)
    assert np.abs(smooth - raw).mean() < 1.5  # without dragging far behind


def test_still_mode_neither_tracks_nor_smooths(s1_frames):
    tracker, faces = run(s1_frames[:5], still=True, embed_every=0)
    assert tracker.detections_run == 5
    assert all(np.array_equal(f[0][1], f[0][2]) for f in faces)


def test_a_cut_to_another_person_starts_a_new_track(s1_frames, other_frames):
    frames = s1_frames[:12] + other_frames[:12]
    _, faces = run(frames, embed_every=100)
    before, after = faces[11][0], faces[12][0]
    assert before[0] != after[0]
    assert distance(before[3], after[3]) > SAME_PERSON  # embedded afresh, not carried over the cut
    assert all(f[0][0] == after[0] for f in faces[12:])


def test_face_leaving_ends_its_track(s1_frames):
    blank = [np.ascontiguousarray(f[:, :60].repeat(6, axis=1)[:, :360]) for f in s1_frames[:6]]  # backdrop only
    _, faces = run(s1_frames[:6] + blank, embed_every=0)
    assert all(len(f) == 1 for f in faces[:6])
    assert all(len(f) == 0 for f in faces[6:])


def test_one_euro_filter_holds_constants_and_follows_steps():
    points = np.full((68, 2), 10.0, np.float32)
    smoother = OneEuroFilter(cutoff=1.5, beta=8.0)
    for _ in range(5):
        out = smoother(points, 0.04, 100.0)
    np.testing.assert_allclose(out, points)
    for _ in range(30):
        out = smoother(points + 20, 0.04, 100.0)
    np.testing.assert_allclose(out, points + 20, atol=0.1)


@pytest.mark.parametrize("speed", [0.5, 5.0])
def test_one_euro_filter_lags_less_when_fast(speed):
    """A faster ramp raises the cutoff, so the lag grows far less than the speed does."""
    lag = []
    for rate in (speed, speed * 4):
        smoother = OneEuroFilter(cutoff=1.5, beta=8.0)
        for step in range(50):
            out = smoother(np.full((68, 2), rate * step, np.float32), 0.04, 100.0)
        lag.append(rate * 49 - out[0, 0])
    assert lag[1] < 4 * lag[0]
