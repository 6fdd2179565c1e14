import cv2
import numpy as np
import pytest
from PIL import Image

from dualface.align import (
    MEAN_FACE,
    align_matrix,
    box_from_landmarks,
    compose,
    crop_matrix,
    cut,
    invert,
    lanczos_down,
    matrix_scale,
    to_mean_face,
    transform_points,
    umeyama,
)
from dualface.detect import detect_faces
from dualface.landmarks import predict_landmarks
from dualface.weights import SHAPE_PREDICTOR_68, weights_path


def read_initial_shape() -> np.ndarray:
    """dlib's serialised shape_predictor starts: version, then the initial shape as a (136, 1) matrix of
    floats; ints are a size/sign byte plus little-endian bytes, floats a mantissa and an exponent."""
    data = weights_path(SHAPE_PREDICTOR_68).read_bytes()[:4096]
    pos = 0

    def integer() -> int:
        nonlocal pos
        head = data[pos]
        size = head & 0x0F
        value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
        pos += 1 + size
        return -value if head & 0x80 else value

    assert integer() == 1  # version
    rows, cols = abs(integer()), abs(integer())
    values = []
    for _ in range(rows * cols):
        mantissa = integer()
        values.append(mantissa * 2.0 ** integer())
    return np.array(values).reshape(68, 2)


def test_mean_face_is_dlibs_initial_shape():
    np.testing.assert_allclose(MEAN_FACE, read_initial_shape(), atol=1e-6)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = rng.normal(size=(68, 2))
    dst = src @ (scale * rotation).T + shift
    matrix = umeyama(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-5)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-4)


def test_umeyama_never_reflects():
    src = MEAN_FACE.astype(np.float64)
    mirrored = src * [-1, 1]
    assert np.linalg.det(umeyama(src, mirrored)[:, :2]) > 0


def test_align_then_unalign_returns_the_landmarks(s1_frames):
    frame = s1_frames[0]
    landmarks = predict_landmarks(frame, detect_faces(frame)[0].box)
    matrix = align_matrix(landmarks, 256, 0.6, "face")
    back = transform_points(transform_points(landmarks, matrix), invert(matrix))
    np.testing.assert_allclose(back, landmarks, atol=1e-3)


def test_aligned_face_matches_landmarks_predicted_in_the_crop(s1_frames):
    """The crop really is the transform: landmarks found in it agree with the transformed ones."""
    frame = s1_frames[10]
    landmarks = predict_landmarks(frame, detect_faces(frame)[0].box)
    matrix = align_matrix(landmarks, 256, 0.6, "face")
    face = cut(frame, matrix, 256)
    expected = transform_points(landmarks, matrix)
    found = predict_landmarks(face, box_from_landmarks(expected))
    assert np.median(np.linalg.norm(found - expected, axis=1)) < 3.0  # pixels of a 256 px crop


def test_mean_face_box_is_the_unit_square():
    np.testing.assert_allclose(box_from_landmarks(MEAN_FACE), (0, 0, 1, 1), atol=1e-5)


def test_box_follows_scale_and_shift():
    landmarks = MEAN_FACE * 120 + [50, 30]
    np.testing.assert_allclose(box_from_landmarks(landmarks), (50, 30, 170, 150), atol=1e-3)


@pytest.mark.parametrize("centering", ["face", "head"])
def test_crop_keeps_the_whole_face(centering):
    """At the default coverage every landmark of the mean face lands inside the crop."""
    points = transform_points(MEAN_FACE, crop_matrix(256, 0.6, centering))
    assert points.min() > 0 and points.max() < 256


def test_coverage_sets_face_width():
    points = transform_points(MEAN_FACE, crop_matrix(200, 0.5, "face"))
    assert points[:, 0].max() - points[:, 0].min() == pytest.approx(100, abs=0.01)


def test_compose_and_scale():
    inner = to_mean_face(MEAN_FACE * 3 + 5)
    assert matrix_scale(inner) == pytest.approx(1 / 3, rel=1e-4)
    both = compose(crop_matrix(64, 0.6, "face"), inner)
    np.testing.assert_allclose(
        transform_points(MEAN_FACE * 3 + 5, both), transform_points(MEAN_FACE, crop_matrix(64, 0.6, "face")), atol=1e-3
    )


def test_training_and_conversion_cut_the_same_crop(face_dirs, other_frames):
    """One face, two paths: training re-cuts the extracted PNG, conversion cuts the video frame. Both go
    through `align.cut`, so the model sees the same pixels (measured: 0.25 levels apart on average; with
    the bilinear warp training used before, 1.8, and 10 at the 99th percentile)."""
    from dualface.alignments import read_face_png
    from dualface.composite import model_input
    from dualface.data import center_crop, load_face
    from dualface.model import ModelConfig

    cfg = ModelConfig.from_preset("lite")
    for path in sorted(face_dirs[1].glob("*.png"))[:4]:
        _, record = read_face_png(path)
        index = int(path.stem.rsplit("_", 2)[1])
        work, points, _ = load_face(path, cfg)
        trained, _ = center_crop(work[None], points[None], cfg.size)
        landmarks = np.array(record["landmarks"], np.float32)
        _, converted = model_input(other_frames[index], landmarks, cfg.size, cfg.coverage, cfg.centering)
        difference = np.abs(trained[0].astype(int) - converted.astype(int))
        assert difference.mean() < 0.6 and np.percentile(difference, 99) <= 4


@pytest.mark.parametrize("scale", [0.95, 0.8, 0.625])
def test_a_shrinking_cut_keeps_the_detail_a_lanczos_resize_keeps(s1_frames, scale):
    """A face shrunk into its crop keeps what the crop can hold: at least 0.85x the Laplacian variance of
    PIL's Lanczos resize of the same pixels (the bilinear warp and box average before 2026-12-06 kept
    0.74x), and lands where the matrix says (the same pixels, within rounding, as that resize)."""
    face = cv2.resize(s1_frames[10][40:240, 100:300], (400, 400), interpolation=cv2.INTER_CUBIC)  # 2x: detail
    size = round(400 * scale)
    matrix = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5]], np.float32)  # a resize's
    ours = cut(face, matrix, size)
    theirs = np.asarray(Image.fromarray(face).resize((size, size), Image.Resampling.LANCZOS))

    def detail(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(cv2.Laplacian(grey, cv2.CV_32F)[8:-8, 8:-8].var())

    assert detail(ours) > 0.85 * detail(theirs)
    assert np.abs(ours.astype(int) - theirs)[8:-8, 8:-8].mean() < 0.6  # a quarter-pixel shift reads 1.1


def test_lanczos_down_keeps_any_dtype_in_range():
    """The filter overshoots at a hard edge: integers come back rounded and clipped, not wrapped."""
    edge = np.zeros((40, 40, 2), np.uint8)
    edge[:, 20:] = 255
    for image in (edge, edge.astype(np.uint16) * 257, edge[..., 0]):
        out = lanczos_down(image, 17)
        assert out.dtype == image.dtype and out.shape[:2] == (17, 17)
        assert out[:, :6].max() <= 2 and out[:, -6:].min() >= np.iinfo(image.dtype).max - 2
    grey = lanczos_down(np.full((40, 40, 3), 0.25, np.float32), 17)
    assert grey.dtype == np.float32 and np.allclose(grey, 0.25, atol=1e-5)
