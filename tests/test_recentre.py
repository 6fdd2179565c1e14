"""Recentring: each checkpoint stores its identities' code statistics, and `convert` moves a video's mean code
by them, keeping the video's own pose, leaning on the training faces where the video shows few faces."""

import numpy as np

from conftest import OTHER
from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
from dualface.config import ConvertConfig
from dualface.convert import convert, recorded_settings
from dualface.data import center_crop, load_face_set
from dualface.recentre import PRIOR_FACES, CodeStats, code_shift, code_stats, crop_poses
from dualface.video import read_video


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
        faces[folder.name] = crops, crop_poses(points, model.config.size)
    again = code_stats(model, faces)
    for name in faces:
        assert np.allclose(again["means"][name], stored["means"][name], atol=1e-4)
        assert np.allclose(again["poses"][name], stored["poses"][name], atol=1e-4)
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
