"""Head pose and eye opening on the bundled GRID footage: a speaker filmed head-on, who blinks in bbaf2n."""

import cv2
import numpy as np
import pytest

from dualface.pose import (
    MODEL_POINTS,
    POSE_POINTS,
    camera_matrix,
    euler_angles,
    eye_opening,
    head_pose,
    rotation_matrix,
)
from dualface.track import FaceTracker, TrackerConfig

SAMPLED = range(0, 75, 8)  # 10 frames spread over the clip
BLINKS = (44, 52)  # frames of bbaf2n with both eyes shut (checked by eye)
OPEN = (10, 40, 70)


def detect_landmarks(frames: list[np.ndarray]) -> np.ndarray:
    """The raw landmarks of the one face on each frame, detected afresh on every frame (no smoothing)."""
    tracker = FaceTracker(TrackerConfig(still=True, embed_every=0))
    found = []
    for index, frame in enumerate(frames):
        tracks = tracker.update(np.ascontiguousarray(frame), index)
        assert len(tracks) == 1, f"frame {index}: {len(tracks)} faces"
        found.append(tracks[0].landmarks)
    return np.array(found)


def poses(landmarks: np.ndarray, frame: np.ndarray) -> np.ndarray:
    return np.array([head_pose(points, frame.shape[:2]) for points in landmarks])


@pytest.fixture(scope="module")
def clip_landmarks(s1_frames) -> np.ndarray:
    """Landmarks on every frame of bbaf2n, tracked as extraction tracks them but unsmoothed (a blink is
    only two or three frames long)."""
    tracker = FaceTracker(TrackerConfig(smooth=False, embed_every=0), fps=25)
    return np.array([tracker.update(frame, i)[0].landmarks for i, frame in enumerate(s1_frames)])


@pytest.fixture(scope="module")
def sampled(s1_frames) -> tuple[list[np.ndarray], np.ndarray]:
    frames = [s1_frames[i] for i in SAMPLED]
    return frames, detect_landmarks(frames)


def test_pose_of_projected_model_is_recovered():
    """Project the 3-D model at known angles through the camera; the fit must return those angles."""
    size = (288, 360)
    for angles in [(0, 0, 0), (25, 0, 0), (0, -15, 0), (0, 0, 30), (-35, 12, -8), (60, 0, 0)]:
        rotation = rotation_matrix(*angles)
        np.testing.assert_allclose(euler_angles(rotation), angles, atol=1e-9)
        rvec, tvec = cv2.Rodrigues(rotation)[0], np.array([0.1, -0.05, 3.0])
        landmarks = np.zeros((68, 2))
        landmarks[POSE_POINTS] = cv2.projectPoints(MODEL_POINTS, rvec, tvec, camera_matrix(size), None)[0][:, 0]
        np.testing.assert_allclose(head_pose(landmarks, size), angles, atol=0.01)


def test_signs_follow_the_nose_and_the_eye_line():
    """The documented signs, read off the projection: yaw > 0 puts the nose right of the eyes, pitch > 0
    lifts it towards them, roll > 0 drops the eye on the image's right."""
    size = (288, 360)

    def project(yaw: float, pitch: float, roll: float) -> np.ndarray:
        y, p, r = np.radians([-yaw, -pitch, roll])
        rotation = cv2.Rodrigues(np.array([0.0, 0.0, r]))[0] @ cv2.Rodrigues(np.array([0.0, y, 0.0]))[0]
        rotation = rotation @ cv2.Rodrigues(np.array([p, 0.0, 0.0]))[0]
        rvec = cv2.Rodrigues(rotation)[0]
        return cv2.projectPoints(MODEL_POINTS, rvec, np.array([0.0, 0.0, 3.0]), camera_matrix(size), None)[0][:, 0]

    nose, eyes = 0, [2, 3]
    frontal = project(0, 0, 0)
    turned = project(20, 0, 0)
    assert turned[nose, 0] - turned[eyes, 0].mean() > frontal[nose, 0] - frontal[eyes, 0].mean() + 1
    up = project(0, 20, 0)
    assert up[nose, 1] - up[eyes, 1].mean() < frontal[nose, 1] - frontal[eyes, 1].mean() - 1
    tilted = project(0, 0, 10)
    assert tilted[3, 1] > tilted[2, 1] + 1


def test_grid_speaker_faces_the_camera(clip_landmarks, s1_frames):
    pose = poses(clip_landmarks, s1_frames[0])
    assert np.abs(np.median(pose[:, 0])) < 15  # yaw
    assert np.abs(pose[:, 2]).max() < 15  # roll
    assert np.abs(pose[:, 0]).max() < 20  # no frame far off
    assert pose.std(0).max() < 4  # a still head reads a steady pose


def test_mirrored_face_negates_yaw_and_roll(sampled):
    frames, landmarks = sampled
    mirrored = detect_landmarks([np.fliplr(f) for f in frames])
    pose, flipped = poses(landmarks, frames[0]), poses(mirrored, frames[0])
    # dlib's predictor is not exactly mirror-symmetric: per frame the two readings differ by a few degrees.
    np.testing.assert_allclose(flipped.mean(0), pose.mean(0) * [-1, 1, -1], atol=4)
    assert np.abs(flipped[:, 0] + pose[:, 0]).max() < 8
    assert np.abs(flipped[:, 2] + pose[:, 2]).max() < 4
    eyes, eyes_flipped = (np.array([eye_opening(p) for p in lm]) for lm in (landmarks, mirrored))
    assert np.abs(eyes - eyes_flipped).max() < 0.05


@pytest.mark.parametrize("angle", [20, -20])
def test_rotating_the_frame_changes_roll_only(sampled, angle):
    frames, landmarks = sampled
    height, width = frames[0].shape[:2]
    # Positive angles turn the picture counter-clockwise on screen, about the camera's principal point.
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    rotated = [cv2.warpAffine(f, matrix, (width, height), flags=cv2.INTER_CUBIC) for f in frames]
    change = poses(detect_landmarks(rotated), frames[0]) - poses(landmarks, frames[0])
    assert np.abs(change[:, 2] + angle).max() < 4
    assert np.abs(change[:, 0].mean()) < 3 and np.abs(change[:, 0]).max() < 6
    assert np.abs(change[:, 1].mean()) < 3


def test_eye_opening_drops_on_a_blink(clip_landmarks):
    opening = np.array([eye_opening(points) for points in clip_landmarks])
    for frame in OPEN:
        assert 0.25 < opening[frame] < 0.45
    for frame in BLINKS:
        assert opening[frame] < 0.6 * np.median(opening)
    assert 0.25 < np.median(opening) < 0.4


def test_eye_opening_is_scale_free(clip_landmarks):
    points = clip_landmarks[10]
    angle = np.radians(25)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert eye_opening(points @ turn.T * 3.0 + 7.0) == pytest.approx(eye_opening(points))
