"""`convert --morph`: the drawn face warped toward the input's proportions, measured by the landmark
predictor itself on a real face."""

import numpy as np
import pytest

from conftest import OTHER
from dualface.align import transform_points
from dualface.composite import model_input
from dualface.config import ConvertConfig
from dualface.convert import convert, recorded_settings
from dualface.detect import detect_faces
from dualface.landmarks import BROWS, LEFT_EYE, MOUTH, RIGHT_EYE, predict_landmarks
from dualface.morph import Morph, drawn_landmarks
from dualface.video import read_video

SIZE = 128
UPPER = np.concatenate([BROWS, RIGHT_EYE, LEFT_EYE])


@pytest.fixture(scope="module")
def face(s1_frames) -> tuple[np.ndarray, np.ndarray]:
    """A real s1 face cut to a 128 px model crop (float in [0, 1]) and its landmarks in crop pixels."""
    frame = s1_frames[10]
    landmarks = predict_landmarks(frame, detect_faces(frame)[0].box)
    matrix, crop = model_input(frame, landmarks, SIZE, 0.9, "face")
    crop = crop.astype(np.float32) / 255
    return crop, drawn_landmarks(crop[None], transform_points(landmarks, matrix)[None])[0]


@pytest.mark.parametrize("amount", [1.0, 0.5])
def test_the_warp_moves_the_features_it_is_asked_to_and_keeps_the_rest(face, amount):
    crop, points = face
    aim = points.copy()
    aim[UPPER, 1] -= 5.0  # brows and eyes 5 px higher: another person's proportions
    warped = Morph.between(points, aim, amount, SIZE)(crop)
    found = drawn_landmarks(warped[None], points[None])[0]
    moved = (found - points)[:, 1]
    assert moved[UPPER].mean() == pytest.approx(-5.0 * amount, abs=1.2)
    assert abs(moved[MOUTH].mean()) < 1.0  # the lips were not asked to move
    # the crop's border, where the paste's edge lies, stays as it was
    edge = np.abs(warped - crop)[[0, -1]].max(), np.abs(warped - crop)[:, [0, -1]].max()
    assert max(edge) < 0.05


def test_no_morph_is_no_warp(face):
    crop, points = face
    same = Morph.between(points, points + 3.0, 0.0, SIZE)
    assert np.abs(same(crop) - crop).max() < 1e-4 and same.offset == 0


def test_convert_morphs_when_asked_and_records_it(tiny_model, tmp_path):
    def run(output, **settings):
        cfg = ConvertConfig(input=OTHER, model=tiny_model, output=output, to="s1", progress=False, **settings)
        return cfg, convert(cfg)

    cfg, morphed = run(tmp_path / "morphed.mp4", morph=1.0)
    run(tmp_path / "plain.mp4")
    assert recorded_settings(cfg, morphed)["morph"] == 1.0 and morphed.morph > 0
    a = np.stack([f for _, f in read_video(tmp_path / "morphed.mp4")]).astype(np.int16)
    b = np.stack([f for _, f in read_video(tmp_path / "plain.mp4")]).astype(np.int16)
    assert np.abs(a - b).mean() > 0.05  # the same faces, drawn the same, pasted warped
