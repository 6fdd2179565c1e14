"""Recentring: each checkpoint stores its identities' code statistics, and `convert` moves a video's mean code
by them, keeping the video's own pose, leaning on the training faces where the video shows few faces."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import OTHER
from dualface.align import to_mean_face
from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
from dualface.config import ConvertConfig
from dualface.convert import convert, recorded_settings
from dualface.data import center_crop, load_face_set
from dualface.metrics import drawn_landmarks
from dualface.model import draw
from dualface.recentre import (
    MOUTH_GAINS,
    PRIOR_FACES,
    CodeMove,
    CodeStats,
    code_shift,
    code_stats,
    codes,
    crop_poses,
    mouth_gain,
    mouths,
)
from dualface.video import read_video

STARTER = Path(__file__).parents[1] / "models" / "starter-lite128-grid.safetensors"


def test_each_checkpoint_stores_its_identities_code_statistics(tiny_model, face_dirs):
    checkpoint = load_checkpoint(resolve_checkpoint(tiny_model, "last"))
    model = model_from(checkpoint)
    stored = checkpoint.meta["codes"]
    assert set(stored["means"]) == set(stored["poses"]) == {"s1", "brbk7n"}
    assert np.array(stored["pose_map"]).shape == (3, model.config.latent)
    # what was stored is what the inference weights make of the training faces (every face: fewer than 256)
    faces = {}
    for folder in face_dirs:
        found = load_face_set(folder, model.config, folder.name)
        crops, points = center_crop(found.faces, found.landmarks, model.config.size)
        faces[folder.name] = crops, crop_poses(points, model.config.size), mouths(points)
    again = code_stats(model, faces)
    for name in faces:
        assert np.allclose(again["means"][name], stored["means"][name], atol=1e-4)
        assert np.allclose(again["poses"][name], stored["poses"][name], atol=1e-4)
        assert np.isclose(again["mouth_var"][name], stored["mouth_var"][name], rtol=1e-3)
        assert stored["mouth_var"][name] > 0  # GRID's speakers open and close their mouths
    assert np.isclose(np.linalg.norm(stored["mouth"]), 1, atol=1e-3) and len(stored["mouth"]) == model.config.latent
    # two people encode apart, or there would be nothing to move
    assert np.linalg.norm(np.subtract(stored["means"]["s1"], stored["means"]["brbk7n"])) > 1e-3


def _stats(rng: np.random.Generator, latent: int = 8) -> CodeStats:
    means = {"a": rng.normal(size=latent), "b": rng.normal(size=latent)}
    poses = {"a": np.array([5.0, -2.0, 0.0]), "b": np.array([-1.0, 7.0, 0.5])}
    return CodeStats(means, poses, rng.normal(size=(3, latent)))


def test_a_videos_mean_moves_onto_the_source_and_toward_the_target_keeping_its_pose():
    rng = np.random.default_rng(0)
    stats = _stats(rng)
    video, pose = rng.normal(size=8), np.array([15.0, -2.0, 0.0])  # a new recording, its head turned 10 degrees
    many = 10**9  # the video's own mean, not the prior's
    at_source = video + code_shift(stats, video, pose, many, "b", "a", toward_target=0)
    turned = (pose - stats.poses["a"]) @ stats.pose_map
    assert np.allclose(at_source, stats.means["a"] + turned, atol=1e-5)  # its light gone, its turn kept
    at_target = video + code_shift(stats, video, pose, many, "b", "a", toward_target=1)
    turned_from_b = (pose - stats.poses["b"]) @ stats.pose_map  # not b's habitual pose: the video's own
    assert np.allclose(at_target, stats.means["b"] + turned_from_b, atol=1e-5)
    # the source is the other identity when not given
    assert np.allclose(code_shift(stats, video, pose, many, "b"), code_shift(stats, video, pose, many, "b", "a"))


def test_few_faces_lean_on_the_training_faces():
    rng = np.random.default_rng(1)
    stats = _stats(rng)
    video, pose = rng.normal(size=8) * 10, np.array([30.0, 10.0, 0.0])  # far off, from one photo
    none = code_shift(stats, video, pose, 0, "b", "a", toward_target=0.5)
    halfway = 0.5 * (stats.means["b"] - stats.means["a"] - (stats.poses["b"] - stats.poses["a"]) @ stats.pose_map)
    assert np.allclose(none, halfway, atol=1e-5)  # no faces: the training faces' means, half way to b's
    one = code_shift(stats, video, pose, 1, "b", "a", toward_target=0.5)
    many = code_shift(stats, video, pose, 10**9, "b", "a", toward_target=0.5)
    # one face moves the estimate 1 / (1 + PRIOR_FACES) of the way from the prior to the video's own
    assert np.allclose(one - none, (many - none) / (1 + PRIOR_FACES), atol=1e-4)


def test_convert_recentres_by_default_and_records_it(tiny_model, tmp_path):
    def run(output, **settings):
        cfg = ConvertConfig(input=OTHER, model=tiny_model, output=output, to="s1", progress=False, **settings)
        return cfg, convert(cfg)

    cfg, on = run(tmp_path / "on.mp4")
    _, off = run(tmp_path / "off.mp4", recentre=False)
    assert on.shift > 0 and off.shift == 0
    assert recorded_settings(cfg, on)["recentre"] is True
    a = np.stack([f for _, f in read_video(tmp_path / "on.mp4")]).astype(np.int16)
    b = np.stack([f for _, f in read_video(tmp_path / "off.mp4")]).astype(np.int16)
    assert np.abs(a - b).mean() > 0.05  # the faces were drawn from other codes
    _, nearer = run(tmp_path / "nearer.mp4", toward_target=1.0)
    assert nearer.shift > 0 and nearer.shift != on.shift
    # the mouth is matched by default (a tiny model's gain is whatever it is, but not exactly 1), and not
    # when asked not to
    assert on.mouth_gain != 1.0 and recorded_settings(cfg, on)["mouth_gain"] == round(on.mouth_gain, 4)
    _, plain = run(tmp_path / "plain.mp4", match_mouth=False)
    assert plain.mouth_gain == 1.0 and plain.shift == pytest.approx(on.shift)


def _with_mouth(stats: CodeStats, rng: np.random.Generator, slopes: dict[str, float]) -> CodeStats:
    mouth = rng.normal(size=len(stats.pose_map[0]))
    stats.mouth = mouth / np.linalg.norm(mouth)
    stats.mouth_var = {k: 0.004 for k in slopes}  # an opening's spread of about 0.06, as GRID's
    stats.mouth_cov = {k: slope * 0.004 for k, slope in slopes.items()}
    return stats


def test_the_mouth_gain_reads_the_videos_mouth_in_the_targets_code_units():
    rng = np.random.default_rng(2)
    stats = _with_mouth(_stats(rng), rng, {"a": 24.0, "b": 30.0})
    opening = rng.uniform(0, 0.4, 10**5)  # a long video whose codes move 15 units per unit of opening
    video = rng.normal(size=8) + (15.0 * (opening - 0.2))[:, None] * stats.mouth
    assert mouth_gain(stats, video, opening, "b", "a") == pytest.approx(2.0, rel=0.01)  # 30 / 15
    # a photo (no spread of its own) is read by the source's training faces
    assert mouth_gain(stats, video[:1], opening[:1], "b", "a") == pytest.approx(30 / 24)
    # a video that opens its mouth further than the target's faces do is drawn less stretched
    assert mouth_gain(stats, 4 * video, opening, "b", "a") < 1
    # a slope from few faces can be wild: the gain stays within bounds
    assert MOUTH_GAINS[0] <= mouth_gain(stats, -100 * video[:3], opening[:3], "b", "a") <= MOUTH_GAINS[1]
    # a target whose faces never open their mouth has no scale to read the video's in
    shut = _with_mouth(_stats(rng), rng, {"a": 24.0, "b": 30.0})
    shut.mouth, shut.mouth_var["b"] = stats.mouth, 1e-6
    assert mouth_gain(shut, video, opening, "b", "a") == 1.0
    # nor does a photo of a person whose training faces never open it
    shut = _with_mouth(_stats(rng), rng, {"a": 24.0, "b": 30.0})
    shut.mouth, shut.mouth_var["a"] = stats.mouth, 1e-6
    assert mouth_gain(shut, video[:1], opening[:1], "b", "a") == 1.0
    # a model that stores no mouth direction stretches nothing
    stats.mouth = None
    assert mouth_gain(stats, video, opening, "b", "a") == 1.0


def test_a_code_move_stretches_only_along_the_mouth_about_the_videos_mean():
    rng = np.random.default_rng(3)
    stats = _with_mouth(_stats(rng), rng, {"a": 24.0, "b": 30.0})
    center, shift = rng.normal(size=8), rng.normal(size=8)
    z = torch.from_numpy(center + rng.normal(size=(5, 8))).float()
    plain = CodeMove(shift)(z).numpy()
    assert np.allclose(plain, z.numpy() + shift, atol=1e-5)
    moved = CodeMove(shift, center, stats.mouth, 2.0)(z).numpy()
    along = (z.numpy() - center) @ stats.mouth
    assert np.allclose((moved - plain) @ stats.mouth, along, atol=1e-4)  # twice as far from the mean
    across = np.eye(8) - np.outer(stats.mouth, stats.mouth)
    assert np.allclose((moved - plain) @ across, 0, atol=1e-4)  # nothing else moves


def test_stretching_along_the_mouth_direction_opens_the_drawn_mouth(face_dirs):
    """On the shipped starter model and real faces: the mouth direction reads the mouth, and a decoder
    drawing codes stretched along it opens its mouth further, in step with the source's."""
    torch.manual_seed(0)
    model = model_from(load_checkpoint(STARTER))
    size, faces, landmarks = model.config.size, {}, {}
    for folder in face_dirs:
        found = load_face_set(folder, model.config, folder.name)
        crops, landmarks[folder.name] = center_crop(found.faces, found.landmarks, size)
        faces[folder.name] = crops, crop_poses(landmarks[folder.name], size), mouths(landmarks[folder.name])
    stats = code_stats(model, faces)
    crops, _, opening = faces["s1"]
    z = codes(model, crops)
    along = (z - z.mean(0)) @ np.array(stats["mouth"])
    assert np.corrcoef(along, opening)[0, 1] > 0.6  # the direction is the mouth's, not noise

    def drawn_mouths(gain: float) -> np.ndarray:
        move = CodeMove(np.zeros(model.config.latent, np.float32), z.mean(0), np.array(stats["mouth"]), gain)
        rgb, _ = draw(model, crops, "brbk7n", move=move)
        images = (rgb * 255).round().astype(np.uint8)
        pairs = zip(images, landmarks["s1"], strict=True)  # read as `evaluate` reads a drawn face
        return mouths(np.array([drawn_landmarks(i, to_mean_face(p)) for i, p in pairs]))

    plain, stretched = drawn_mouths(1.0), drawn_mouths(2.0)
    assert stretched.std() > 1.3 * plain.std()
    assert np.corrcoef(stretched, opening)[0, 1] > 0.5  # wider, and still the source's mouth
