import csv
import itertools
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import OTHER, S1, S1_CLIPS
from dualface.augment import random_warp, sample_batch
from dualface.checkpoint import (
    best_or_latest,
    checkpoints_in,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    model_from,
    read_meta,
    save_checkpoint,
)
from dualface.cli import _wait_for
from dualface.config import AugmentConfig, ExtractConfig, TrainConfig, parse_duration
from dualface.data import FaceSet, load_face_set
from dualface.errors import DualfaceError
from dualface.extract import extract
from dualface.heldout import figure_names
from dualface.landmarks import mouth_opening
from dualface.model import Autoencoder, ModelConfig
from dualface.presets import preset_batch, preset_lr
from dualface.preview import plot_loss_curve
from dualface.recentre import code_faces, code_stats
from dualface.runstate import latest_good
from dualface.train import _append_figures, _trim_log, batch_stream, learning_rate, train, weights_digest
from dualface.watermark import verify

LITE = ModelConfig.from_preset("lite")


def quick(face_dirs, model_dir, **settings) -> TrainConfig:
    base = dict(batch_size=4, warmup=2, save_every=3, preview_every=3, progress=False, tensorboard=False)
    return TrainConfig(faces=list(face_dirs), model_dir=model_dir, **{**base, **settings})


def losses_in(model_dir: Path) -> list[tuple[int, float]]:
    with open(model_dir / "training_log.csv", newline="") as f:
        return [(int(r["step"]), float(r["loss_s1"])) for r in csv.DictReader(f)]


def test_face_set_loads_crops_and_landmarks(face_dirs):
    faces = load_face_set(face_dirs[0], LITE)
    assert len(faces) == 25 and faces.faces.shape == (25, 80, 80, 3) and faces.landmarks.shape == (25, 68, 2)
    mouth = faces.landmarks[:, 48:68].mean(1)
    assert (mouth[:, 1] > 40).all() and (abs(mouth[:, 0] - 40) < 8).all()  # below centre, near the middle


def test_augmentation_moves_face_and_mask_together(face_dirs):
    faces = load_face_set(face_dirs[0], LITE)
    still = AugmentConfig(rotation=0, zoom=0, shift=0, flip=0, warp=0, lightness=0, color=0)
    batch = sample_batch(faces, 64, 3, np.random.default_rng(0), still)
    assert np.array_equal(batch.inputs, batch.targets)  # nothing random left: input is the target
    centre = faces.faces[:, 8:72, 8:72]
    assert any(np.abs(centre[i].astype(int) - batch.targets[0]).mean() < 2 for i in range(len(faces)))
    moved = sample_batch(faces, 64, 8, np.random.default_rng(1), AugmentConfig(warp=0))
    for target, mask in zip(moved.targets, moved.masks, strict=True):
        redness = target[..., 0].astype(int) - target[..., 2]
        assert redness[mask > 0].mean() > redness[mask == 0].mean() + 30  # on skin, not hair or blue backdrop


def test_augmentation_keeps_the_faces_detail(face_dirs):
    # Shifted by a random fraction of a pixel, a face must keep its fine detail: bilinear sampling there
    # keeps 0.59x of the Laplacian's variance on these faces, and the decoders learn that blur.
    faces = load_face_set(face_dirs[0], LITE)
    one = FaceSet("s1", faces.faces[:1], faces.landmarks[:1], faces.files[:1])
    still = dict(rotation=0, zoom=0, flip=0, warp=0, lightness=0, color=0)

    def detail(batch) -> list[float]:
        grey = [cv2.cvtColor(t, cv2.COLOR_RGB2GRAY).astype(np.float32) for t in batch.targets]
        return [float(cv2.Laplacian(g, cv2.CV_32F)[m > 0.5].var()) for g, m in zip(grey, batch.masks, strict=True)]

    (crop,) = detail(sample_batch(one, 64, 1, np.random.default_rng(0), AugmentConfig(**still, shift=0)))
    shifted = detail(sample_batch(one, 64, 32, np.random.default_rng(0), AugmentConfig(**still)))
    assert np.median(shifted) > 0.8 * crop


def test_balance_draws_rare_mouth_openings_more_often(face_dirs):
    faces = load_face_set(face_dirs[0], LITE)
    opening = np.array([mouth_opening(p) for p in faces.landmarks])
    wide = opening >= np.quantile(opening, 0.8)  # the widest fifth of this speaker's mouths

    def share_wide(balance: float) -> float:
        chances = faces.draw_probabilities(balance)
        return 0.2 if chances is None else float(chances[wide].sum())

    assert share_wide(0) == 0.2 and share_wide(0.5) > 0.22 and share_wide(1.0) > share_wide(0.5)
    # Through sample_batch, unaugmented: each target is one face's centre crop, so the draws can be read back.
    still = dict(rotation=0, zoom=0, shift=0, flip=0, warp=0, lightness=0, color=0)
    crops = faces.faces[:, 8:72, 8:72].reshape(len(faces), -1).astype(np.int32)

    def mean_opening(balance: float) -> float:
        batch = sample_batch(faces, 64, 300, np.random.default_rng(0), AugmentConfig(**still, balance=balance))
        targets = batch.targets.reshape(len(batch.targets), -1).astype(np.int32)
        picks = [np.abs(crops - t).sum(1).argmin() for t in targets]
        return float(opening[picks].mean())

    assert mean_opening(1.0) > mean_opening(0.0) * 1.1


def test_recolor_takes_the_other_identitys_colours_for_half_the_faces(face_dirs):
    s1, other = (load_face_set(d, LITE) for d in face_dirs)
    still = dict(rotation=0, zoom=0, shift=0, flip=0, warp=0, lightness=0, color=0)

    def lab_means(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        pairs = zip(images, masks, strict=True)
        return np.array([cv2.cvtColor(i, cv2.COLOR_RGB2LAB)[m > 0.5].mean(0) for i, m in pairs])

    plain = sample_batch(s1, 64, 40, np.random.default_rng(0), AugmentConfig(**still), [other])
    alone = sample_batch(s1, 64, 40, np.random.default_rng(0), AugmentConfig(**still))
    assert np.array_equal(plain.targets, alone.targets)  # off, the other identity changes no draw
    recoloured = sample_batch(s1, 64, 40, np.random.default_rng(0), AugmentConfig(**still, recolor="rct"), [other])
    assert np.array_equal(recoloured.inputs, recoloured.targets)  # the input is the recoloured face too
    their_faces = sample_batch(other, 64, 40, np.random.default_rng(1), AugmentConfig(**still))
    own, theirs = lab_means(plain.targets, plain.masks), lab_means(their_faces.targets, their_faces.masks)
    moved = lab_means(recoloured.targets, recoloured.masks)
    changed = np.abs(moved - own).max(1) > 2
    assert 0.25 < changed.mean() < 0.75  # about half
    # the recoloured faces sit nearer the other identity's mean colour than they did
    assert (
        np.linalg.norm(moved[changed] - theirs.mean(0), axis=1).mean()
        < 0.5 * np.linalg.norm(own[changed] - theirs.mean(0), axis=1).mean()
    )


def test_input_recolor_recolours_the_input_alone(face_dirs):
    s1, other = (load_face_set(d, LITE) for d in face_dirs)
    still = dict(rotation=0, zoom=0, shift=0, flip=0, warp=0, lightness=0, color=0)
    plain = sample_batch(s1, 64, 40, np.random.default_rng(0), AugmentConfig(**still), [other])
    both = sample_batch(s1, 64, 40, np.random.default_rng(0), AugmentConfig(**still, input_recolor=1.0), [other])
    assert np.array_equal(both.targets, plain.targets)  # the targets keep their own colours
    inside = both.masks > 0.5
    moved = [np.abs(i.astype(int) - t)[m].mean() for i, t, m in zip(both.inputs, both.targets, inside, strict=True)]
    assert np.mean(np.array(moved) > 1) > 0.5  # most inputs recoloured (a few drew a face of like colour)


def test_random_warp_changes_input_only_smoothly():
    image = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    warped = random_warp(image, np.random.default_rng(0), 0.04)
    difference = np.abs(warped.astype(int) - image).mean()
    assert 0.5 < difference < 10


def test_bad_face_folders(tmp_path, face_dirs):
    with pytest.raises(DualfaceError, match="no such face folder"):
        load_face_set(tmp_path / "missing", LITE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DualfaceError, match="holds no face PNGs"):
        load_face_set(tmp_path / "empty", LITE)
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "photos" / "cat.png")
    with pytest.raises(DualfaceError, match="not a face extracted by dualface"):
        load_face_set(tmp_path / "photos", LITE)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    extract(ExtractConfig(inputs=[S1], output=mixed, every=30, size=128, progress=False))
    extract(ExtractConfig(inputs=[OTHER], output=mixed, every=30, size=96, progress=False))
    with pytest.raises(DualfaceError, match="mixed sizes"):
        load_face_set(mixed, LITE)


def test_checkpoint_round_trip_and_corruption(tmp_path):
    model = Autoencoder(LITE, ["a", "b"])
    path = tmp_path / "step-00000007.safetensors"
    save_checkpoint(path, model, None, 7, {"model_config": LITE.to_dict(), "identities": ["a", "b"]})
    loaded = load_checkpoint(path)
    assert loaded.step == 7 and loaded.meta["identities"] == ["a", "b"]
    again = Autoencoder(ModelConfig(**loaded.meta["model_config"]), ["a", "b"])
    again.load_state_dict(loaded.model)
    assert weights_digest(again) == weights_digest(model)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DualfaceError, match="corrupt"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DualfaceError, match="corrupt"):
        load_checkpoint(path)


def test_a_checkpoint_of_the_wrong_kind_is_refused_in_one_line(tmp_path):
    critic = tmp_path / "critic.safetensors"
    save_checkpoint(critic, torch.nn.Linear(2, 2), None, 1, {"role": "critic"})
    with pytest.raises(DualfaceError, match="holds a critic's weights, not a dualface model"):
        load_checkpoint(critic)
    assert load_checkpoint(critic, model=False).step == 1  # what resuming a critic reads
    with pytest.raises(DualfaceError, match="a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)
    newer = tmp_path / "newer.safetensors"
    settings = {**LITE.to_dict(), "hyper_heads": 3}
    save_checkpoint(newer, Autoencoder(LITE, ["a", "b"]), None, 1, {"model_config": settings, "identities": ["a", "b"]})
    with pytest.raises(DualfaceError, match=r"newer dualface .*hyper_heads"):
        load_checkpoint(newer)
    # --resume sets a damaged checkpoint aside, but not one it merely cannot read: that stops the run
    folder = tmp_path / "m"
    folder.mkdir()
    save_checkpoint(
        folder / "step-00000001.safetensors",
        Autoencoder(LITE, ["a", "b"]),
        None,
        1,
        {"model_config": LITE.to_dict(), "identities": ["a", "b"]},
    )
    (folder / "step-00000002.safetensors").write_bytes(newer.read_bytes())
    with pytest.raises(DualfaceError, match="newer dualface"):
        latest_good(folder)
    assert (folder / "step-00000002.safetensors").exists()


def test_the_loss_curve_is_drawn_past_a_row_cut_short(tmp_path):
    log_csv = tmp_path / "training_log.csv"
    log_csv.write_text(
        "step,seconds,lr,loss_a,loss_b,egs_per_s\n1,0.5,1e-4,0.3,0.4,10\n2,1.0,1e-4,0.2,0.3,10\n3,1.5,1e"
    )
    plot_loss_curve(log_csv, tmp_path / "loss.png")  # a run killed mid-row leaves its last one short
    assert Image.open(tmp_path / "loss.png").size[0] > 100


def test_failed_save_leaves_the_good_checkpoint(tmp_path):
    model = Autoencoder(LITE, ["a", "b"])
    good = tmp_path / "step-00000001.safetensors"
    save_checkpoint(good, model, None, 1, {"model_config": LITE.to_dict(), "identities": ["a", "b"]})
    before = good.read_bytes()
    with pytest.raises(DualfaceError, match="cannot save checkpoint"):
        save_checkpoint(tmp_path / "gone" / "step-00000002.safetensors", model, None, 2, {})
    assert good.read_bytes() == before and not list(tmp_path.glob(".*tmp"))


def test_training_writes_everything_and_learns(face_dirs, tmp_path):
    settings = dict(iterations=6, lr=1e-3, tensorboard=True, gan_power=0.1, gan_after=4)
    summary = train(quick(face_dirs, tmp_path / "m", **settings))
    assert summary.step == 6 and summary.stopped_by == "iterations" and summary.examples_per_second > 0
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"best.safetensors", "preview.png", "loss.png", "training_log.csv", "tensorboard"} <= files
    names = [p.name for p in checkpoints_in(tmp_path / "m")]
    assert names == ["step-00000003.safetensors", "step-00000006.safetensors"]
    preview = Image.open(tmp_path / "m" / "preview.png")
    assert preview.text["dualface:synthetic"] == "true" and preview.size[1] > 8 * 128
    assert verify(tmp_path / "m" / "preview.png").marked  # it shows drawn faces: marked as every output is
    model = load_model(tmp_path / "m")
    assert model.identities == ["s1", "brbk7n"]
    steps = losses_in(tmp_path / "m")
    assert [s for s, _ in steps] == [1, 2, 3, 4, 5, 6]
    events = EventAccumulator(str(tmp_path / "m" / "tensorboard"))
    events.Reload()
    scalars = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["loss/s1"] == scalars["egs_per_s"] == [1, 2, 3, 4, 5, 6]
    assert scalars["critic/patch"] == [5, 6]  # the critic judges from --gan-after on


def test_resume_trims_the_logs_to_its_checkpoint(tmp_path):
    """A run killed past its last save logged steps it will redo: those rows go, and a row the kill cut
    short; what stays is byte for byte as written (the csv module's line ends, a quoted field)."""
    log = tmp_path / "eval_log.csv"
    rows = ['step,"s1->b/mouth, normalised",x\r\n', "0,0.5,1\r\n", "2,0.6,\r\n", "4,0.7,2\r\n", "6,0.8,3\r\n", "8,0.9"]
    log.write_bytes("".join(rows).encode())
    _trim_log(log, 4)
    assert log.read_bytes() == "".join(rows[:4]).encode()
    _trim_log(tmp_path / "missing.csv", 4)  # nothing to trim
    assert not (tmp_path / "missing.csv").exists()


def test_a_log_whose_columns_change_keeps_each_figure_under_its_own_name(tmp_path):
    log = tmp_path / "eval_log.csv"
    _append_figures(log, ["step", "a/ssim", "a->b/mouth"], [2, "0.5", "0.7"])
    _append_figures(log, ["step", "a/ssim", "a->b/mouth"], [4, "0.6", "0.8"])
    _append_figures(log, ["step", "a/ssim", "b/ssim"], [6, "0.65", "0.4"])  # resumed with other held-out faces
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["2", "4", "6"]
    assert [r["a->b/mouth"] for r in rows] == ["0.7", "0.8", ""]
    assert [r["b/ssim"] for r in rows] == ["", "", "0.4"]
    _append_figures(log, ["step", "a/ssim", "b/ssim"], [8, "0.7", "0.5"])  # the new header is not the merged one
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1] == {"step": "8", "a/ssim": "0.7", "a->b/mouth": "", "b/ssim": "0.5"}


def test_cycle_loss_trains_and_counts_in_the_logged_loss(face_dirs, tmp_path):
    train(quick(face_dirs, tmp_path / "plain", iterations=2, seed=0))
    cycled = train(quick(face_dirs, tmp_path / "cycled", iterations=2, seed=0, cycle_weight=1.0, swap_faces=1))
    assert cycled.step == 2
    first = [losses_in(tmp_path / name)[0][1] for name in ("plain", "cycled")]
    assert np.isfinite(first).all() and first[1] > first[0]  # same faces, same weights: plus the drift


def test_expression_judge_trains_and_its_verdict_moves_the_weights_unlogged(face_dirs, tmp_path):
    train(quick(face_dirs, tmp_path / "plain", iterations=2, seed=0))
    settings = dict(iterations=2, seed=0, expression_weight=1.0, gan_after=0, swap_faces=1)
    judged = train(quick(face_dirs, tmp_path / "judged", **settings))
    assert judged.step == 2 and (tmp_path / "judged" / "expression-judge.safetensors").exists()
    plain, swapped = ([loss for _, loss in losses_in(tmp_path / name)] for name in ("plain", "judged"))
    assert plain[0] == swapped[0]  # the verdict is not in the logged loss...
    assert plain[1] != swapped[1]  # ...but it trained the weights the second step starts from


@pytest.mark.parametrize("layout", [None, True])  # None: the machine's default; True: channels-last anywhere
def test_resume_continues_exactly(face_dirs, tmp_path, layout):
    # Channels-last once broke this: the checkpoint's Adam moments came back contiguous under channels-last
    # weights, and the resumed run drifted (1e-4 in the loss after 3 steps).
    # One thread count for all three: auto measures the idle cores per run, and a different count sums in
    # another order (a full suite once failed the weights' hash that way, the losses equal to 1e-5).
    fixed = dict(channels_last=layout, threads=2)
    straight = train(quick(face_dirs, tmp_path / "one", iterations=6, **fixed))
    train(quick(face_dirs, tmp_path / "two", iterations=3, **fixed))
    resumed = train(quick(face_dirs, tmp_path / "two", iterations=6, resume=True, **fixed))
    assert resumed.step == 6
    np.testing.assert_allclose(
        [v for _, v in losses_in(tmp_path / "two")], [v for _, v in losses_in(tmp_path / "one")], rtol=1e-5
    )
    assert resumed.weights_sha256 == straight.weights_sha256
    # the weights' moving average is carried on exactly too, and it is what inference loads
    one, two = (load_checkpoint(latest_checkpoint(tmp_path / name)) for name in ("one", "two"))
    assert one.average is not None and set(one.average) == set(one.model)
    for key, value in one.average.items():
        assert torch.equal(value, two.average[key]), key
    key = "decoders.s1.to_rgb.weight"
    assert not torch.equal(one.average[key], one.model[key])
    assert torch.equal(model_from(one).state_dict()[key], one.average[key])


def test_resume_refuses_what_it_cannot_continue(face_dirs, tmp_path):
    with pytest.raises(DualfaceError, match="holds no checkpoint"):
        train(quick(face_dirs, tmp_path / "none", iterations=2, resume=True))
    train(quick(face_dirs, tmp_path / "m", iterations=3))
    with pytest.raises(DualfaceError, match="already holds a model"):
        train(quick(face_dirs, tmp_path / "m", iterations=3))
    with pytest.raises(DualfaceError, match="'lite' model, not 'original'"):
        train(quick(face_dirs, tmp_path / "m", iterations=6, resume=True, preset="original"))
    latest = checkpoints_in(tmp_path / "m")[-1]
    latest.write_bytes(latest.read_bytes()[:1000])
    with pytest.raises(DualfaceError, match="corrupt"):
        train(quick(face_dirs, tmp_path / "m", iterations=6, resume=True))
    # a header whose length is garbage (a disk error) is set aside like any damage, not read as 2**63 bytes,
    # also where the batch and rate are looked up in it (`settled`)
    train(quick(face_dirs, tmp_path / "g", iterations=4, save_every=2))
    latest = checkpoints_in(tmp_path / "g")[-1]
    latest.write_bytes(b"\xff" * 8 + os.urandom(1000))
    with pytest.raises(DualfaceError, match="corrupt"):
        read_meta(latest)
    resumed = train(quick(face_dirs, tmp_path / "g", iterations=6, resume=True, batch_size=None, lr=None))
    assert resumed.step == 6 and latest.with_name(latest.name + ".corrupt").exists()


def test_resume_past_its_end_trains_nothing_and_the_clock_goes_on(face_dirs, tmp_path):
    """The same command again after a finished run takes no step more (nor prunes an older checkpoint);
    --time counts the run's training time, so a stopped run resumed finishes its budget, not a new one."""
    train(quick(face_dirs, tmp_path / "m", iterations=6))
    kept = checkpoints_in(tmp_path / "m")
    again = train(quick(face_dirs, tmp_path / "m", iterations=6, resume=True))
    assert (again.step, again.stopped_by) == (6, "iterations") and checkpoints_in(tmp_path / "m") == kept
    assert read_meta(kept[-1])["seconds"] > 0

    first = train(quick(face_dirs, tmp_path / "t", time_limit=3.0))
    spent = read_meta(latest_checkpoint(tmp_path / "t"))["seconds"]
    assert first.stopped_by == "time" and spent >= 3.0
    assert train(quick(face_dirs, tmp_path / "t", time_limit=3.0, resume=True)).step == first.step
    more = train(quick(face_dirs, tmp_path / "t", time_limit=spent + 1.0, resume=True))
    trained = read_meta(latest_checkpoint(tmp_path / "t"))["seconds"] - spent
    assert more.stopped_by == "time" and 1.0 <= trained < 3.0  # the second left, not a fresh budget (4 s and more)
    with open(tmp_path / "t" / "training_log.csv", newline="") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    assert seconds == sorted(seconds)  # the log's clock goes on across the resume


def test_resume_keeps_the_batch_and_rate_it_was_trained_at(face_dirs, tmp_path):
    # Not the preset's, which change between versions (lite128's batch went from 16 to 4); given again, they win.
    train(quick(face_dirs, tmp_path / "m", iterations=3, batch_size=2, lr=1e-4))
    train(quick(face_dirs, tmp_path / "m", iterations=6, resume=True, batch_size=None, lr=None))
    recorded = read_meta(latest_checkpoint(tmp_path / "m"))
    assert (recorded["step"], recorded["train"]["batch_size"], recorded["train"]["lr"]) == (6, 2, 1e-4)
    assert (preset_batch("lite"), preset_lr("lite")) != (2, 1e-4)
    train(quick(face_dirs, tmp_path / "m", iterations=9, resume=True, batch_size=4, lr=None))
    recorded = read_meta(latest_checkpoint(tmp_path / "m"))
    assert (recorded["step"], recorded["train"]["batch_size"], recorded["train"]["lr"]) == (9, 4, 1e-4)


def test_best_by_a_held_out_figure_is_checked_before_a_step_and_kept_with_its_own_codes(face_dirs, tmp_path):
    """The last step is measured (a run shorter than --eval-every would keep its start as best); best's
    code statistics are its own weights' (convert recentres by them); a mistyped --best-by on a resumed
    run is refused before it trains a step it could not save."""
    other = tmp_path / "s1-other"
    extract(ExtractConfig(inputs=[S1_CLIPS[1]], output=other, every=5, progress=False))
    settings = dict(eval_every=4, eval_faces=4, held_out={"s1": other}, best_by="s1/psnr", save_every=100)
    train(quick(face_dirs, tmp_path / "m", iterations=3, lr=1e-3, **settings))
    with open(tmp_path / "m" / "eval_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "3"]
    # the figures --best-by is checked against before the first step are those measured
    assert list(rows[0])[1:] == figure_names(["s1", "brbk7n"], ["s1"], {"s1", "brbk7n"}, None)
    best = load_checkpoint(tmp_path / "m" / "best.safetensors")
    model = model_from(best)
    faces = {}
    for folder in face_dirs:
        got = load_face_set(folder, model.config, folder.name)
        faces[folder.name] = code_faces(got.faces, got.landmarks, model.config.size)
    own = code_stats(model, faces)["means"]
    for name, mean in best.meta["codes"]["means"].items():
        assert np.allclose(mean, own[name], atol=1e-3), name
    with pytest.raises(DualfaceError, match="--best-by 's1/pnsr': the held-out figures are s1/ssim, s1/psnr"):
        train(quick(face_dirs, tmp_path / "m", iterations=6, resume=True, **{**settings, "best_by": "s1/pnsr"}))
    assert read_meta(latest_checkpoint(tmp_path / "m"))["step"] == 3


def test_a_run_takes_its_preset_from_the_checkpoint_it_continues_or_starts_from(face_dirs, tmp_path):
    """A model's shape is its checkpoint's, so its preset (and the rate and batch that go with it) is too:
    --resume or --init without --preset is not refused for the default's not matching."""
    train(quick(face_dirs, tmp_path / "m", iterations=1, preset="lite128", batch_size=None))
    assert quick(face_dirs, tmp_path / "n", init=tmp_path / "m").preset == "lite128"
    assert quick(face_dirs, tmp_path / "n", init=tmp_path / "m", batch_size=None).batch_size == preset_batch("lite128")
    assert train(quick(face_dirs, tmp_path / "m", iterations=2, resume=True, batch_size=None)).step == 2
    assert quick(face_dirs, tmp_path / "n").preset == "lite"  # nothing to continue: the default


def test_stop_rules(face_dirs, tmp_path):
    assert train(quick(face_dirs, tmp_path / "e", epochs=0.5)).step == 4  # 0.5 x 25 faces / batch 4 = 3.1 -> 4
    assert train(quick(face_dirs, tmp_path / "t", target_loss=10.0)).stopped_by == "target loss"
    assert train(quick(face_dirs, tmp_path / "s", time_limit=0.01)).stopped_by == "time"


def test_divergence_rolls_back_and_lowers_the_learning_rate(face_dirs, tmp_path, caplog):
    """A learning rate of 1e30 overflows the weights on the first step: every non-finite loss rolls back to
    the last good state at half the learning rate, and after five in a row training stops with an error,
    never writing the broken weights."""
    model_dir = tmp_path / "m"
    with caplog.at_level(logging.WARNING), pytest.raises(DualfaceError, match="keeps diverging"):
        train(quick(face_dirs, model_dir, iterations=12, lr=1e30, warmup=1, clip=1e9, save_every=100))
    rolled = [r.getMessage() for r in caplog.records if "rolled back" in r.getMessage()]
    assert [m.rsplit("x", 1)[1] for m in rolled] == ["0.5", "0.25", "0.125", "0.0625", "0.0312"]
    assert all("rolled back to step 0," in m for m in rolled)  # no checkpoint yet: the weights it started from
    for path in checkpoints_in(model_dir):  # whatever was saved before it diverged is finite
        assert all(np.isfinite(v.float().numpy()).all() for v in load_checkpoint(path).model.values())


def test_helpers():
    assert parse_duration("1h30m") == 5400 and parse_duration("20m") == 1200 and parse_duration("90") == 90
    with pytest.raises(DualfaceError):
        parse_duration("soon")
    assert learning_rate(0, 1e-4, 10) == pytest.approx(1e-5) and learning_rate(50, 1e-4, 10) == 1e-4


def test_decay_anneals_the_learning_rate_to_a_tenth_over_the_runs_last_share(face_dirs, tmp_path):
    # the schedule: constant until the last `decay` share of the run, then down to a tenth, never up
    rates = [learning_rate(200, 1e-4, 10, p, 0.25) for p in np.linspace(0, 1, 41)]
    assert rates[:30] == [1e-4] * 30 and rates[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in itertools.pairwise(rates)) and 1e-5 < rates[35] < 1e-4
    # wired into training: the log's rate, by steps (--iterations)
    quick_run = quick(face_dirs, tmp_path / "m", iterations=12, decay=0.5)
    train(quick_run)
    with open(tmp_path / "m" / "training_log.csv", newline="") as f:
        logged = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f)}
    assert logged[4] == pytest.approx(2e-4, rel=0.01) and logged[12] == pytest.approx(2e-5, rel=0.01)
    with pytest.raises(DualfaceError, match="--decay needs"):
        quick(face_dirs, tmp_path / "n", decay=0.5)


def test_warp_off_trains_the_runs_last_share_unwarped_and_resumes_exactly(face_dirs, tmp_path, caplog):
    sets = [load_face_set(d, LITE) for d in face_dirs]
    _, plain = next(batch_stream(sets, 64, 4, AugmentConfig(warp=0.0), seed=0, rank=0, start=0))
    assert all(np.array_equal(b.inputs, b.targets) for b in plain.values())
    fixed = dict(threads=2)  # one thread count for all: another sums in another order
    with caplog.at_level(logging.INFO, logger="dualface.train"):
        straight = train(quick(face_dirs, tmp_path / "one", iterations=6, warp_off=0.5, **fixed))
    assert "random warp off from step 3 " in caplog.text
    assert train(quick(face_dirs, tmp_path / "warped", iterations=6, **fixed)).weights_sha256 != straight.weights_sha256
    # Resumed past the share, the run is unwarped from its first step, so it ends where the straight one did.
    train(quick(face_dirs, tmp_path / "two", iterations=3, **fixed))
    resumed = train(quick(face_dirs, tmp_path / "two", iterations=6, warp_off=0.5, resume=True, **fixed))
    assert resumed.weights_sha256 == straight.weights_sha256
    with pytest.raises(DualfaceError, match="--warp-off needs"):
        quick(face_dirs, tmp_path / "n", warp_off=0.5)
    quick(face_dirs, tmp_path / "n", warp_off=1.0)  # the whole run: no end needed


def test_distributed_training_on_two_cpu_processes(face_dirs, tmp_path):
    """torchrun, 2 processes, gloo: every replica ends with the same weights, and the checkpoint loads
    in a single process to those weights."""
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "from dualface.train import TrainConfig, train\n"
        f"cfg = TrainConfig(faces=[Path({str(face_dirs[0])!r}), Path({str(face_dirs[1])!r})], "
        f"model_dir=Path({str(tmp_path / 'm')!r}), batch_size=2, iterations=4, save_every=2, preview_every=4, "
        "warmup=1, progress=False, tensorboard=False)\n"
        "summary = train(cfg)\n"
        f"Path({str(tmp_path)!r}, 'rank' + os.environ['RANK']).write_text(summary.weights_sha256)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", str(worker)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (tmp_path / "rank0").read_text(), (tmp_path / "rank1").read_text()
    assert rank0 == rank1
    checkpoint = load_checkpoint(checkpoints_in(tmp_path / "m")[-1])
    assert checkpoint.step == 4 and checkpoint.meta["identities"] == ["s1", "brbk7n"]
    single = Autoencoder(ModelConfig(**checkpoint.meta["model_config"]), checkpoint.meta["identities"])
    single.load_state_dict(checkpoint.model)
    assert weights_digest(single) == rank0


def test_processes_option_trains_as_single_threaded_workers_with_the_batch_split(face_dirs, tmp_path):
    """`dualface train --processes 2` starts two workers (meeting at a file): they train one model together,
    each on half the batch and one thread; called as a library function, the option says who starts them."""
    model = tmp_path / "m"
    faces = [str(d) for d in face_dirs]
    args = ["train", *faces, "-m", str(model), "--processes", "2", "--batch-size", "4", "--iterations", "3"]
    result = subprocess.run(
        [sys.executable, "-m", "dualface", *args, "--no-progress"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(checkpoints_in(model)[-1])
    assert checkpoint.step == 3 and checkpoint.meta["train"]["batch_size"] == 2  # 4 split between 2
    with open(model / "training_log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)][-1] == 3
    with pytest.raises(DualfaceError, match="--processes 2: the `dualface train` command starts them"):
        train(quick(face_dirs, tmp_path / "n", processes=2, iterations=1))
    with pytest.raises(DualfaceError, match="--batch-size 5 must be a multiple of --processes 2"):
        train(quick(face_dirs, tmp_path / "n", processes=2, batch_size=5, iterations=1))
    missing = ["train", str(tmp_path / "missing"), faces[1], "-m", str(tmp_path / "b"), "--processes", "2"]
    bad = subprocess.run(
        [sys.executable, "-m", "dualface", *missing, "--iterations", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stderr.count("error:") == 1 and "no such face folder" in bad.stderr


def test_a_failed_workers_exit_code_is_the_launchers():
    # Real processes: rank 1 fails at once, rank 0 meets the same error later (under load, seen: the launcher
    # stopped it and exited 143); a worker that never ends is stopped after the grace, and its stop's code
    # does not hide the failure's.
    def worker(code: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code])

    assert _wait_for([worker("import time, sys; time.sleep(1.5); sys.exit(1)"), worker("raise SystemExit(1)")]) == 1
    started = time.monotonic()
    assert _wait_for([worker("import time; time.sleep(60)"), worker("raise SystemExit(3)")], grace=1) == 3
    assert time.monotonic() - started < 30
    # A worker that does not end when stopped (stuck in a collective, or saving past `kill`) is killed.
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    started = time.monotonic()
    assert _wait_for([worker(deaf), worker("raise SystemExit(3)")], grace=1, kill=1) == 3
    assert time.monotonic() - started < 30
    assert _wait_for([worker("pass"), worker("pass")]) == 0


def test_init_and_freeze_fine_tune_a_trained_model(face_dirs, tiny_model, tmp_path):
    """--init starts from another model's (averaged) weights, its identities renamed in order; --freeze
    leaves parts of it exactly as they were."""
    start = load_checkpoint(best_or_latest(tiny_model))
    start_weights = start.average or start.model
    cfg = quick(face_dirs, tmp_path / "m", iterations=2, init=tiny_model, freeze=("encoder",))
    cfg.names = ["alice", "bob"]
    train(cfg)
    tuned = load_checkpoint(latest_checkpoint(tmp_path / "m"))
    assert tuned.meta["init"] == str(best_or_latest(tiny_model).resolve())  # the file the folder gave
    tuned = tuned.model
    for key, value in start_weights.items():
        if key.startswith("encoder."):
            assert torch.equal(tuned[key], value.float()), key
    assert not torch.equal(tuned["decoders.bob.to_rgb.weight"], start_weights["decoders.brbk7n.to_rgb.weight"])

    # --no-init-decoders: the encoder from the checkpoint, the decoders as random as a new model's
    # (another seed than tiny_model's, whose 6 steps left its decoders close to that seed's random ones)
    cfg = quick(face_dirs, tmp_path / "e", iterations=1, lr=1e-7, seed=1, init=best_or_latest(tiny_model),
                init_decoders=False)  # fmt: skip
    train(cfg)
    tuned = load_checkpoint(latest_checkpoint(tmp_path / "e")).model
    torch.manual_seed(cfg.seed)
    fresh = Autoencoder(ModelConfig(**start.meta["model_config"]), cfg.names).state_dict()
    for key, value in start_weights.items():
        if key.startswith("encoder."):
            assert torch.allclose(tuned[key], value.float(), atol=1e-4), key
        elif key.startswith("decoders."):
            assert torch.allclose(tuned[key], fresh[key], atol=1e-4), key
            assert not torch.allclose(tuned[key], value.float(), atol=1e-3), key
    with pytest.raises(DualfaceError, match="--freeze"):
        train(quick(face_dirs, tmp_path / "n", iterations=1, freeze=("wings",)))
    # a shape the checkpoint started from cannot take is refused, never trained past silently
    with pytest.raises(DualfaceError, match=r"--preset lite128: --init .* 'lite' model"):
        train(quick(face_dirs, tmp_path / "p", iterations=1, init=tiny_model, preset="lite128"))
    with pytest.raises(DualfaceError, match="--shared-upscales 0: the checkpoint it starts from has 1"):
        train(quick(face_dirs, tmp_path / "p", iterations=1, init=tiny_model, shared_upscales=0))
    with pytest.raises(DualfaceError, match="--learn-mask True"):
        train(quick(face_dirs, tmp_path / "e", iterations=3, resume=True, learn_mask=True))
    with pytest.raises(DualfaceError, match="--eval-every"):
        quick(face_dirs, tmp_path / "o", best_by="s1->brbk7n/mouth")


def test_threads_fixed_or_left_to_the_idle_cores():
    """A fixed count is applied as given; auto leaves a core to a CPU-bound competitor (a real busy
    process, not a mock) on a machine with more than one core, and a share of auto takes less; auto
    without the wait at the start sees the competitor at its first update; training's auto runs in lanes
    beside it."""
    from dualface.threads import FIRST_CHECK_S, ThreadPolicy, cores

    before = torch.get_num_threads()
    try:
        assert ThreadPolicy(1).start() == 1 and torch.get_num_threads() == 1
        if cores() < 2:
            pytest.skip("one core: nothing to leave to a competitor")
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env)
        try:
            _wait_until_spinning(competitor.pid)
            saved = os.environ.pop("OMP_NUM_THREADS", None)
            try:
                assert ThreadPolicy(0).start(sample_s=1.0) <= cores() - 1
                # conversion's model takes half of what is idle, never none
                assert 1 <= ThreadPolicy(0, share=0.5).start(sample_s=1.0) <= max(1, cores() // 2)
                # without the wait: every core at first, the competitor seen within FIRST_CHECK_S
                quick = ThreadPolicy(0)
                assert quick.start(sample_s=0) == cores()
                time.sleep(FIRST_CHECK_S + 0.2)
                assert quick.update() <= cores() - 1
                # training, whose batch can be cut: every core, in lanes (lanes.py); a fixed count never is
                shared = ThreadPolicy(0, split=4)
                shared.start(sample_s=1.0)
                assert shared.lanes == min(cores(), 4) and 1 <= shared.current <= max(1, cores() // shared.lanes)
                fixed = ThreadPolicy(1, split=4)
                assert fixed.start() == 1 and fixed.lanes == 1
            finally:
                if saved is not None:
                    os.environ["OMP_NUM_THREADS"] = saved
        finally:
            competitor.kill()
            competitor.wait()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value, fixed", [("1", 1), (" 1", 1), ("2,1", 2), ("", 0), ("all", 0)])
def test_omp_num_threads_as_openmp_reads_it_fixes_the_count(monkeypatch, value, fixed):
    """OpenMP takes " 1" and a nested "2,1" as surely as "1": each fixes the count (no lanes, no auto
    measuring over it); a value it would not read leaves auto in charge."""
    from dualface.threads import ThreadPolicy

    monkeypatch.setenv("OMP_NUM_THREADS", value)
    before = torch.get_num_threads()
    try:
        policy = ThreadPolicy(0, split=2)
        count = policy.start(sample_s=0)
        if fixed:
            assert (count, policy.threads, policy.lanes) == (fixed, fixed, 1)
        else:
            assert policy.threads == 0
    finally:
        torch.set_num_threads(before)


def test_training_beside_a_busy_process_runs_in_lanes_with_the_critic(face_dirs, tmp_path, caplog):
    """On a CPU a real busy process shares, auto training splits its steps into lanes (lanes.py), and the
    whole step works there: losses, the critic's turn on the lanes' drawn faces, checkpoints."""
    from dualface.threads import cores

    if cores() < 2:
        pytest.skip("one core: no lanes")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env)
    saved = os.environ.pop("OMP_NUM_THREADS", None)
    try:
        _wait_until_spinning(competitor.pid)
        with caplog.at_level(logging.INFO, logger="dualface.train"):
            summary = train(quick(face_dirs, tmp_path / "m", iterations=3, gan_power=0.1, gan_after=1, learn_mask=True))
    finally:
        if saved is not None:
            os.environ["OMP_NUM_THREADS"] = saved
        competitor.kill()
        competitor.wait()
    assert f"training in {min(cores(), 2)} lanes" in caplog.text  # batch 4: lanes of at least 2 faces
    assert summary.step == 3 and all(np.isfinite(v) for v in summary.losses.values())
    assert [s for s, _ in losses_in(tmp_path / "m")] == [1, 2, 3]
    trained = load_checkpoint(tmp_path / "m" / "step-00000003.safetensors")
    assert trained.step == 3 and load_checkpoint(tmp_path / "m" / "critic.safetensors", model=False).step == 3
    torch.manual_seed(0)  # the weights train() started from: the lanes' gradients reached every part
    start = Autoencoder(ModelConfig(**trained.meta["model_config"]), trained.meta["identities"]).state_dict()
    for part in ("encoder.", "trunk.", "decoders.s1.", "decoders.brbk7n."):
        assert any(not torch.equal(v, start[k]) for k, v in trained.model.items() if k.startswith(part)), part


def _wait_until_spinning(pid: int, deadline_s: float = 30) -> None:
    """Wait until a process has used 0.2 s of CPU (it has started its busy loop)."""
    ticks = os.sysconf("SC_CLK_TCK")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / ticks >= 0.2:
            return
        time.sleep(0.05)
    raise AssertionError(f"the competitor {pid} did not start within {deadline_s} s")


def test_liae_trains_and_carries_its_swap_identity_through_init(face_dirs, tmp_path):
    """`--liae`: the model is built so, its checkpoint says so, and a run that starts from it under other
    names swaps into the same face set's new name; a different --liae for a model that exists is refused."""
    train(quick(face_dirs, tmp_path / "liae", iterations=2, liae="brbk7n"))
    model = load_model(tmp_path / "liae")
    assert model.config.liae == "brbk7n" and set(model.inters) == {"s1"}
    start = latest_checkpoint(tmp_path / "liae")
    renamed = quick(face_dirs, tmp_path / "again", iterations=1, init=start, names=["alice", "bob"])
    train(renamed)
    again = load_model(tmp_path / "again")
    assert again.config.liae == "bob" and set(again.inters) == {"alice"}
    with pytest.raises(DualfaceError, match="built as LIAE into brbk7n"):
        train(quick(face_dirs, tmp_path / "other", iterations=1, init=start, liae="s1"))
    with pytest.raises(DualfaceError, match="not one of the identities"):
        train(quick(face_dirs, tmp_path / "typo", iterations=1, liae="brbk7"))


def test_coverage_sets_how_much_of_the_crop_the_face_spans(face_dirs, tmp_path):
    """`--coverage`: the training crops put the face jaw to jaw across that share of their width, the model
    records it (convert and evaluate cut by the model's record), and a resumed model keeps its own crop."""
    spans = {}
    for coverage in (0.75, 0.9):
        cfg = ModelConfig.from_preset("lite", coverage=coverage)
        faces = load_face_set(face_dirs[0], cfg)
        margin = (faces.faces.shape[1] - cfg.size) // 2
        jaw = faces.landmarks[:, 16, 0] - faces.landmarks[:, 0, 0]  # the outermost jaw points, work-crop px
        spans[coverage] = float(np.median(jaw)) / cfg.size  # s1's jaw is a little narrower than the mean face's
        assert abs(spans[coverage] - coverage) < 0.1
        assert (faces.landmarks[:, :, 1].min(1) > margin - 4).all()  # brows inside the model's crop
    assert spans[0.9] / spans[0.75] == pytest.approx(0.9 / 0.75, rel=0.02)
    train(quick(face_dirs, tmp_path / "tight", iterations=2, coverage=0.9))
    assert load_model(tmp_path / "tight").config.coverage == 0.9
    with pytest.raises(DualfaceError, match=r"crops at 0\.9"):
        train(quick(face_dirs, tmp_path / "tight", iterations=3, coverage=0.75, resume=True))
    start = latest_checkpoint(tmp_path / "tight")
    with pytest.raises(DualfaceError, match=r"crops at 0\.9"):
        train(quick(face_dirs, tmp_path / "from", iterations=1, init=start, coverage=0.75))
