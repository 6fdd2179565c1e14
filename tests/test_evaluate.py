"""`dualface evaluate` on real footage, checked where the right answer is known: a clip against itself,
a clip of B against B's identity; plus the figures logged during training and the end-to-end demo."""

import csv
import json
from pathlib import Path

import av
import pytest

from conftest import OTHER, S1
from dualface.demo import DemoConfig, run_demo
from dualface.errors import DualfaceError
from dualface.evaluate import EvaluateConfig, evaluate
from dualface.train import TrainConfig, train
from dualface.watermark import verify
from test_cli import dualface, one_line_error


def run(model: Path, source: Path, output: Path, to: str, tmp_path: Path, **settings):
    config = EvaluateConfig(source, output, model, to, report=tmp_path / "report", progress=False, **settings)
    return evaluate(config)


def test_a_clip_against_itself_is_a_perfect_copy(tiny_model, tmp_path):
    ev, html = run(tiny_model, S1, S1, "brbk7n", tmp_path, embed_frames=5)
    assert ev.frames == ev.frames_scored == 75
    assert ev.flicker_ratio == 1.0
    assert ev.landmark_error < 0.02  # the same face, measured twice from slightly different boxes
    assert ev.mouth_r > 0.95 and ev.eyes_r > 0.9
    assert max(ev.pose_error.values()) < 1.5
    # s1's own face is s1, not brbk7n: no identity transfer at all
    assert ev.identity_transfer == 0.0 and ev.mean_to_source < 0.6 < ev.mean_to_target
    page = html.read_text()
    assert "data:image/png;base64," in page and "Identity transfer" in page
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(data["per_frame"]) == 75 and data["identity_transfer"] == 0.0


def test_a_clip_of_the_target_scores_as_the_target(tiny_model, tmp_path, face_dirs):
    ev, _ = run(tiny_model, OTHER, OTHER, "brbk7n", tmp_path, embed_frames=5, held_out={"s1": face_dirs[0]})
    assert ev.identity_transfer == 1.0 and ev.mean_to_target < 0.6 < ev.mean_to_source
    quality = ev.reconstruction["s1"]
    assert quality["faces"] == 25 and 0 < quality["ssim"] < 1 and quality["psnr"] > 5


def test_a_swap_that_ignores_the_source_is_caught(tiny_model, tmp_path, s1_frames, other_frames):
    """Pair s1's clip with an "output" that is brbk7n's clip: the right identity, but a face that does not
    follow the source. Identity transfer is perfect; the expression figures must say it is not a swap."""
    ev, _ = run(tiny_model, S1, OTHER, "brbk7n", tmp_path, embed_frames=5)
    assert ev.identity_transfer == 1.0
    assert abs(ev.mouth_r) < 0.5 and ev.landmark_error > 0.05


def test_bad_input(tiny_model, tmp_path):
    with pytest.raises(DualfaceError, match="no such file"):
        run(tiny_model, tmp_path / "nope.mp4", S1, "brbk7n", tmp_path)
    with pytest.raises(DualfaceError, match="carol"):
        run(tiny_model, S1, S1, "carol", tmp_path)
    one_line_error(dualface("evaluate", str(S1), str(S1), "-m", str(tmp_path), "--to", "x"), "no checkpoint")
    one_line_error(
        dualface("evaluate", str(S1), str(S1), "-m", str(tiny_model), "--to", "brbk7n", "--held-out", "s1"), "s1"
    )


def test_training_logs_held_out_figures(face_dirs, tmp_path):
    config = TrainConfig(
        faces=list(face_dirs),
        model_dir=tmp_path / "m",
        batch_size=4,
        iterations=4,
        eval_every=2,
        eval_faces=4,
        progress=False,
        tensorboard=False,
    )
    train(config)
    with open(tmp_path / "m" / "eval_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "2", "4"]  # where it starts, then every 2 steps
    for key in ("s1/ssim", "brbk7n/psnr", "s1->brbk7n/transfer", "brbk7n->s1/distance", "s1->brbk7n/mouth_r"):
        assert key in rows[0]
    assert 0 <= float(rows[-1]["s1->brbk7n/transfer"]) <= 1


def test_demo_runs_end_to_end(tmp_path):
    """The demo's whole path, with two training steps instead of hundreds (its numbers are measured by
    running `make demo`, see the README)."""
    result = run_demo(DemoConfig(output=tmp_path / "demo", iterations=2, progress=False), log=lambda _: None)
    for what, path in result.files.items():
        assert path.exists(), what
    assert verify(result.files["side-by-side video"], samples=3).marked
    with av.open(str(result.files["side-by-side video"])) as video:
        assert (video.streams.video[0].width, video.streams.video[0].height) == (720, 288)
        assert video.streams.audio
    assert result.evaluation.frames == 75 and "s1" in result.evaluation.reconstruction
