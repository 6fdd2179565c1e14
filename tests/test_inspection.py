"""`dualface inspect` on faces extracted from the bundled GRID clips."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualface.errors import DualfaceError
from dualface.inspection import FaceStats, find_gaps, inspect_sets, load_stats, plot_coverage


@pytest.fixture(scope="module")
def s1_stats(face_dirs) -> FaceStats:
    return load_stats(face_dirs[0])


def test_one_plausible_entry_per_face(face_dirs, s1_stats):
    for folder, stats in ((face_dirs[0], s1_stats), (face_dirs[1], load_stats(face_dirs[1], "other"))):
        files = sorted(p.name for p in folder.glob("*.png"))
        assert stats.files == files and len(files) == 25
        for values in (stats.yaw, stats.pitch, stats.mouth, stats.eyes):
            assert values.shape == (25,) and np.isfinite(values).all()
        # GRID speakers face the camera, talk, and mostly keep their eyes open.
        assert np.abs(stats.yaw).max() < 30 and np.abs(stats.pitch).max() < 30
        assert stats.mouth.min() >= 0 and stats.mouth.max() < 0.6
        assert stats.eyes.min() > 0.1 and stats.eyes.max() < 0.5 and 0.25 < np.median(stats.eyes) < 0.45
        assert np.ptp(stats.mouth) > 0.05  # speech opens and closes the mouth
    assert load_stats(face_dirs[1], "other").name == "other" and s1_stats.name == "s1"


def test_a_set_covers_itself(face_dirs, tmp_path):
    a, b, gaps = inspect_sets(face_dirs[0], face_dirs[0], tmp_path / "self.png")
    assert gaps == []
    assert a.name != b.name  # one folder twice: the chart still tells them apart
    np.testing.assert_array_equal(a.yaw, b.yaw)


def test_a_set_of_closed_mouths_lacks_the_open_ones(face_dirs, s1_stats, tmp_path):
    """B: the 10 of s1's faces with the most closed mouths (real faces, copied): it lacks s1's open mouths."""
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    for index in np.argsort(s1_stats.mouth)[:10]:
        shutil.copy(face_dirs[0] / s1_stats.files[index], quiet)
    _, b, gaps = inspect_sets(face_dirs[0], quiet, tmp_path / "coverage.png")
    mouth = [g for g in gaps if g.measure == "mouth"]
    assert mouth, gaps
    for gap in mouth:
        assert gap.low >= b.mouth.max() - 1e-9  # above every mouth B has
        assert gap.count_b == 0 and gap.count_a >= 3
        assert "mouth" in gap.advice and gap.advice.startswith("quiet has 0 faces with the mouth")
        assert "mouth closed" not in gap.advice  # the missing faces are the open ones


def test_chart_is_a_png_with_provenance(face_dirs, s1_stats, tmp_path):
    other = load_stats(face_dirs[1])
    gaps = find_gaps(s1_stats, other)
    path = tmp_path / "coverage.png"
    plot_coverage(s1_stats, other, gaps, path)
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size == (1000, 750)
        assert image.text["dualface:synthetic"] == "true"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # something was drawn
    assert [p.name for p in tmp_path.iterdir()] == ["coverage.png"]  # no temporary file left behind


def test_gap_needs_faces_in_a_and_few_in_b():
    """The thresholds on explicit values: 45 faces of A at 20..30 degrees of yaw, B with 1 there."""
    rng = np.random.default_rng(0)

    def stats(name: str, yaw: np.ndarray) -> FaceStats:
        n = len(yaw)
        return FaceStats(name, yaw, np.zeros(n), np.full(n, 0.1), np.full(n, 0.3))

    a = stats("alice", np.concatenate([rng.uniform(-5, 5, 100), rng.uniform(21, 29, 45), [-35, -35]]))
    b = stats("bob", np.concatenate([rng.uniform(-5, 5, 50), [25.0]]))
    gaps = find_gaps(a, b)
    assert [(g.measure, g.low, g.high, g.count_a, g.count_b) for g in gaps] == [("yaw", 20, 30, 45, 1)]
    assert gaps[0].advice.startswith("bob has 1 face turned to their left (yaw 20..30°) where alice has 45")
    assert find_gaps(a, b, min_faces=1) == []  # B's one face is enough when one is asked for
    assert find_gaps(b, a) == []  # the other way round, A covers everything B does


def test_missing_empty_or_foreign_folder_is_a_clear_error(tmp_path, s1_frames):
    with pytest.raises(DualfaceError, match="no such face folder"):
        load_stats(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DualfaceError, match="no face PNGs"):
        load_stats(empty)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(s1_frames[0]).save(photos / "frame.png")  # a real picture, but not an extracted face
    with pytest.raises(DualfaceError, match="not a face extracted by dualface") as error:
        inspect_sets(photos, photos, None)
    assert "\n" not in str(error.value)


def test_output_folder_is_created(face_dirs, tmp_path: Path):
    inspect_sets(face_dirs[0], face_dirs[1], tmp_path / "reports" / "coverage.png")
    assert (tmp_path / "reports" / "coverage.png").stat().st_size > 10_000


def test_faces_facing_the_camera_share_one_bin():
    """A set whose faces all sit at yaw 1..8 faces the camera: it must not be reported as lacking faces
    facing the camera because another set's frontal faces sit at -5..-1."""
    rng = np.random.default_rng(1)

    def stats(name: str, yaw: np.ndarray) -> FaceStats:
        n = len(yaw)
        return FaceStats(name, yaw, np.zeros(n), np.full(n, 0.1), np.full(n, 0.3))

    a = stats("alice", rng.uniform(-5, -1, 80))
    b = stats("bob", rng.uniform(1, 8, 80))
    assert [g for g in find_gaps(a, b) if g.measure == "yaw"] == []
    assert [g for g in find_gaps(b, a) if g.measure == "yaw"] == []
    # ...while a real gap next to the frontal bin is still found
    c = stats("carol", np.concatenate([rng.uniform(-5, 5, 60), rng.uniform(12, 18, 40)]))
    assert [(g.low, g.high) for g in find_gaps(c, b) if g.measure == "yaw"] == [(10, 20)]
