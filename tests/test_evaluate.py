"""`dualface evaluate` on real footage, checked where the right answer is known: the source against
itself (the ceiling), a static swap (the floor, which must never be called usable), a blurred copy, a clip
of the target itself; plus the figures logged during training and the end-to-end demo."""

import base64
import csv
import io
import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import OTHER, S1, S1_CLIPS, dualface, one_line_error, write_video
from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
from dualface.composite import model_input
from dualface.config import ConvertConfig, DemoConfig, EvaluateConfig, ExtractConfig, PasteConfig, TrainConfig
from dualface.convert import convert
from dualface.demo import run_demo
from dualface.errors import DualfaceError
from dualface.evaluate import (
    StaticSwap,
    _source_is_not_target,
    evaluate,
    evaluate_video,
    eyes_still,
    recorded_conversion,
    static_swap_video,
)
from dualface.extract import extract
from dualface.files import FolderLock
from dualface.metrics import FrameScore
from dualface.report import _strip
from dualface.track import FaceTracker, TrackerConfig
from dualface.train import train
from dualface.video import read_video
from dualface.watermark import verify
from dualface.writer import video_writer


def run(model: Path, source: Path, output: Path, to: str, tmp_path: Path, **settings):
    settings.setdefault("embed_frames", 5)
    settings.setdefault("real_faces", False)  # scored by the first test alone: it doubles the evaluation's time
    config = EvaluateConfig(source, output, model, to, report=tmp_path / "report", progress=False, **settings)
    return evaluate(config)


def test_the_source_against_itself_is_the_ceiling(tiny_model, tmp_path, face_dirs):
    ev, html = run(tiny_model, S1, S1, "brbk7n", tmp_path, target_faces=face_dirs[1], real_faces=True)
    assert ev.frames == ev.frames_scored == 75
    for name in ("mouth", "eyes"):
        assert ev.scores[name].value == pytest.approx(1.0) and ev.scores[name].normalised >= 0.95
    assert ev.scores["landmark_error"].value == 0 and ev.scores["flicker_ratio"].value == 1.0
    assert ev.scores["landmark_shape"].value == ev.scores["landmark_tracking"].value == 0
    assert ev.scores["sharpness_in_place"].value == pytest.approx(1.0)
    # s1's own face is s1, not brbk7n: no identity transfer at all, far from brbk7n's own faces
    assert ev.scores["identity_transfer"].value == 0.0 and ev.scores["identity_gap"].value > 1.5
    assert ev.scores["source_identity"].value == 1.0  # the source is s1, as the model knows her
    assert not ev.usable and "identity_transfer" in ev.failed
    # brbk7n's own real faces pasted over s1 instead: her identity, so the failed transfer was reachable and is
    # not excused; what they fail too is named, and only among what the output failed
    assert ev.real_faces == 75 and ev.scores["identity_transfer"].reachable >= 0.95
    assert "identity_transfer" not in ev.out_of_reach and set(ev.out_of_reach) <= set(ev.failed)
    assert ev.scores["identity_gap"].reachable < ev.scores["identity_gap"].value
    assert ev.scores["landmark_error"].reachable > 0 and ev.scores["mouth"].reachable is not None
    assert ev.step == load_checkpoint(resolve_checkpoint(tiny_model)).step
    page = html.read_text()
    for words in ("floor (static swap)", "normalised", "least sharp", "Verdict: not usable yet", f"step {ev.step}",
                  "real faces pasted (75 faces)"):  # fmt: skip
        assert words in page
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(data["per_frame"]) == 75 and data["scores"]["identity_transfer"]["value"] == 0.0
    assert data["checkpoint"] == ev.checkpoint and data["usable"] is False
    # the stills show the output's faces: labelled and marked, so `verify` knows one saved from the page
    stills = [
        Image.open(io.BytesIO(base64.b64decode(uri)))
        for uri in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    ]
    stills = [image for image in stills if image.text.get("dualface:synthetic") == "true"]
    assert stills
    for i, image in enumerate(stills):
        image.save(tmp_path / f"still{i}.png")
        assert verify(tmp_path / f"still{i}.png").marked
    frame = next(read_video(S1))[1]
    single = _strip([(0, frame, frame)], 160)  # one face, as the blurriest strip can be: too narrow to mark
    (tmp_path / "single.png").write_bytes(base64.b64decode(single.split(",", 1)[1]))
    assert min(Image.open(tmp_path / "single.png").size) >= 256 and verify(tmp_path / "single.png").marked


def test_a_static_swap_is_the_floor_and_never_usable(tiny_model, tmp_path, face_dirs):
    """Two still faces pasted over s1's clip through the conversion's own compositing: the floor itself
    (the model's drawing of the first face), and, as strong as a static swap gets, brbk7n's real face
    (sharp, 100% her). Identity is perfect; the expression measures read them as the floor, and the
    verdict says no."""
    model = model_from(load_checkpoint(resolve_checkpoint(tiny_model)))
    floor = static_swap_video(S1, StaticSwap(model, "brbk7n", PasteConfig()), tmp_path / "floor.mp4")
    assert verify(floor, samples=3).marked
    ev, _ = run(tiny_model, S1, floor, "brbk7n", tmp_path, target_faces=face_dirs[1])
    # The still face's eye opening is landmark jitter: the same floor written at crf 16, 18 and 20 read eyes
    # 0.12, 0.17 and 0.14 normalised (mouth -0.01 to 0.02); a swap whose eyes follow the source reads ~1.
    assert ev.scores["mouth"].normalised <= 0.15 and ev.scores["eyes"].normalised <= 0.2
    assert not ev.usable and "mouth" in ev.failed
    assert not ev.scores["eyes"].still and "eyes" in ev.failed  # s1 blinks; the still face does not

    first = next(read_video(OTHER))[1]
    points = FaceTracker(TrackerConfig(embed_every=0), fps=25).update(first, 0)[0].landmarks
    _, crop = model_input(first, points, model.config.size, model.config.coverage, model.config.centering)
    real = StaticSwap(model, "brbk7n", PasteConfig(), drawn=(crop.astype(np.float32) / 255, None))
    ev, _ = run(tiny_model, S1, static_swap_video(S1, real, tmp_path / "real.mp4"), "brbk7n", tmp_path,
                target_faces=face_dirs[1])  # fmt: skip
    assert ev.scores["identity_transfer"].value == 1.0
    assert abs(ev.scores["mouth"].value) <= 0.15 and abs(ev.scores["eyes"].value) <= 0.2  # eyes: jitter, as above
    assert ev.scores["mouth"].normalised <= 0.15
    assert not ev.usable and "mouth" in ev.failed


def test_a_blurred_or_oversharpened_copy_is_not_sharp(tiny_model, tmp_path, face_dirs):
    """Sharpness against the person's own faces at the same size: the source reads about 1, a Gaussian
    blur (sigma 1.2 px on GRID's 288 lines, the 3 px of a 720p frame) far below, and the source
    unsharp-masked hard (its finest octave x2.5: halos on every edge) above the ceiling."""
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.2) for _, f in read_video(S1)]
    halos = [cv2.addWeighted(f, 2.5, cv2.GaussianBlur(f, (0, 0), 1.0), -1.5, 0) for _, f in read_video(S1)]
    itself, _ = run(tiny_model, S1, S1, "s1", tmp_path, target_faces=face_dirs[0])
    blur, _ = run(tiny_model, S1, write_video(tmp_path / "blurred.mp4", blurred), "s1", tmp_path,
                  target_faces=face_dirs[0])  # fmt: skip
    harsh, _ = run(tiny_model, S1, write_video(tmp_path / "harsh.mp4", halos), "s1", tmp_path,
                   target_faces=face_dirs[0])  # fmt: skip
    assert 0.7 <= itself.scores["sharpness"].value <= 1.4
    assert blur.scores["sharpness"].value <= 0.4 and blur.scores["sharpness_in_place"].value <= 0.4
    assert harsh.scores["sharpness"].value > 1.5
    assert "sharpness" in blur.failed and "sharpness" in harsh.failed and "sharpness" not in itself.failed
    assert itself.scores["identity_gap"].value < 1.3  # s1 is as close to s1 as s1's own faces
    # ...and so the copy is no swap: its source already showed the target, which it names
    assert itself.scores["source_identity"].value == 0.0 and "source_identity" in itself.failed
    # Grain is not detail: the blurred copy under one fixed grain (the same on every frame, so flicker does
    # not see it) reads as sharp as the source by variance, and fails on its noise floor.
    rng = np.random.default_rng(0)
    fixed = rng.normal(0, 5, blurred[0].shape[:2])[..., None]
    grainy = [
        np.clip(cv2.GaussianBlur(f, (0, 0), 1.0) + fixed, 0, 255).round().astype(np.uint8) for _, f in read_video(S1)
    ]
    noisy, _ = run(tiny_model, S1, write_video(tmp_path / "grainy.mp4", grainy), "s1", tmp_path,
                   target_faces=face_dirs[0])  # fmt: skip
    assert 0.5 <= noisy.scores["sharpness"].value <= 1.5  # fooled, alone
    assert noisy.scores["grain"].value > 1.5 and "grain" in noisy.failed
    assert 0.7 <= itself.scores["grain"].value <= 1.3 and "grain" not in itself.failed
    assert blur.scores["grain"].value < 1 and "grain" not in blur.failed


def test_a_sharpened_paste_is_shown_not_credited(tiny_model, tmp_path, face_dirs):
    """The source itself (which passes sharpness), re-encoded under a conversion record that says it was
    pasted with `--sharpen 1`: its figure is shown, the verdict does not count it, the report says why."""
    record = {"paste": {"sharpen": 1.0}}
    tagged = tmp_path / "tagged.mp4"
    with video_writer(tagged, S1, tags={"dualface_conversion": json.dumps(record)}) as write:
        for _, frame in read_video(S1):
            write(frame)
    ev, html = run(tiny_model, S1, tagged, "s1", tmp_path, target_faces=face_dirs[0])
    assert 0.6 <= ev.scores["sharpness"].value <= 1.4  # it would pass
    assert ev.scores["sharpness"].not_credited == "pasted with --sharpen 1" and "sharpness" in ev.failed
    assert "--sharpen 1" in html.read_text()


def test_convert_records_its_checkpoint_and_evaluate_uses_it(tiny_model, tmp_path):
    swap = tmp_path / "swap.mp4"
    summary = convert(ConvertConfig(S1, tiny_model, swap, "brbk7n", checkpoint="last", progress=False))
    recorded = recorded_conversion(swap)
    assert recorded["checkpoint"] == str(summary.checkpoint) and recorded["step"] == summary.step == 6
    assert recorded["paste"]["mask"] == "auto"
    result = dualface("convert", str(S1), "-m", str(tiny_model), "--to", "brbk7n", "-o", str(tmp_path / "b.mp4"))
    assert result.returncode == 0 and "(step 6)" in result.stdout
    with pytest.raises(DualfaceError, match="no such file"):
        resolve_checkpoint(tiny_model, "step-99.safetensors")


def test_an_odd_sized_source_is_evaluated_against_its_padded_conversion(tiny_model, tmp_path, face_dirs, s1_frames):
    """convert pads an odd side by one pixel (H.264 in yuv420p takes even sides only): evaluate takes its
    output at that size, and measures its frames cut back to the source's; any other size is refused."""
    odd = tmp_path / "odd.mkv"
    with av.open(str(odd), "w") as container:  # ffv1 takes odd sides
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 359, 287, "yuv444p"
        for frame in s1_frames[:20]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame[:287, :359].copy(), format="rgb24")))
        container.mux(stream.encode())
    swap = tmp_path / "odd_swap.mp4"
    convert(ConvertConfig(odd, tiny_model, swap, "brbk7n", progress=False))
    ev, _ = run(tiny_model, odd, swap, "brbk7n", tmp_path, target_faces=face_dirs[1])
    assert ev.frames == ev.frames_scored == 20
    with pytest.raises(DualfaceError, match=r"odd\.mkv is 359x287, its source 360x288"):
        evaluate_video(S1, odd, {}, "brbk7n")  # smaller than its source: no conversion of it


def test_bad_input(tiny_model, tmp_path, face_dirs, s1_frames):
    with pytest.raises(DualfaceError, match=r"these faces are not brbk7n's \(they sit 0\.\d+ from"):
        run(tiny_model, S1, S1, "brbk7n", tmp_path, target_faces=face_dirs[0])  # s1's, not hers
    with pytest.raises(DualfaceError, match=r"--target-faces .*typo: no such folder"):
        run(tiny_model, S1, S1, "brbk7n", tmp_path, target_faces=tmp_path / "typo")
    with pytest.raises(DualfaceError, match="typo: no such face folder"):  # before the evaluation, not after
        run(tiny_model, S1, S1, "brbk7n", tmp_path, held_out={"s1": tmp_path / "typo"})
    short = write_video(tmp_path / "short.mp4", s1_frames[:6])
    with pytest.raises(DualfaceError, match="6 frame\\(s\\) with a face, fewer than the 10"):
        run(tiny_model, short, short, "brbk7n", tmp_path, target_faces=face_dirs[1])
    with pytest.raises(DualfaceError, match="no such file"):
        run(tiny_model, tmp_path / "nope.mp4", S1, "brbk7n", tmp_path)
    with pytest.raises(DualfaceError, match="carol"):
        run(tiny_model, S1, S1, "carol", tmp_path)
    one_line_error(dualface("evaluate", str(S1), str(S1), "-m", str(tmp_path), "--to", "x"), "no checkpoint")
    one_line_error(
        dualface("evaluate", str(S1), str(S1), "-m", str(tiny_model), "--to", "brbk7n", "--held-out", "s1"), "s1"
    )


def test_a_report_it_cannot_write_and_a_folder_for_a_video_are_refused_first(tiny_model, tmp_path, s1_frames):
    """Said before any work: the clip here is too short to evaluate, which the evaluation itself would say
    only after searching its frames for faces; the report's folder was tried only after the whole run."""
    short = write_video(tmp_path / "short.mp4", s1_frames[:6])
    (tmp_path / "f").write_text("x")
    model = ["-m", str(tiny_model), "--to", "brbk7n"]
    report = tmp_path / "f" / "report"
    one_line_error(dualface("evaluate", str(short), str(short), *model, "-o", str(report)), str(report), "cannot write")
    one_line_error(dualface("evaluate", str(short), str(tmp_path), *model), str(tmp_path), "a folder, not a video file")


def test_training_logs_held_out_figures_from_unseen_clips(face_dirs, tmp_path):
    other = tmp_path / "s1-other"
    extract(ExtractConfig(inputs=[S1_CLIPS[1]], output=other, every=5, progress=False))
    config = TrainConfig(
        faces=list(face_dirs),
        model_dir=tmp_path / "m",
        batch_size=4,
        iterations=4,
        eval_every=2,
        held_out={"s1": other},
        best_by="s1->brbk7n/mouth",
        progress=False,
        tensorboard=False,
    )
    train(config)
    with open(tmp_path / "m" / "eval_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "2", "4"]  # where it starts, then every 2 steps
    for key in ("s1/ssim", "s1->brbk7n/transfer", "s1->brbk7n/distance", "s1->brbk7n/mouth", "s1->brbk7n/eyes"):
        assert key in rows[0]
    assert "brbk7n/ssim" not in rows[0]  # brbk7n's faces are one clip: none can be held out without leaking
    assert 0 <= float(rows[-1]["s1->brbk7n/transfer"]) <= 1
    best = tmp_path / "m" / "best.safetensors"
    if best.exists():  # only a defined figure can make a best checkpoint
        assert load_checkpoint(best).meta["best_score"] is not None
    # one clip per identity and no --held-out: nothing to measure on without leaking, said plainly
    with pytest.raises(DualfaceError, match="--held-out"):
        train(TrainConfig(faces=list(face_dirs), model_dir=tmp_path / "n", iterations=1, eval_every=1, progress=False))


def test_a_second_demo_into_the_same_folder_is_refused(tmp_path):
    (tmp_path / "demo").mkdir()
    with FolderLock(tmp_path / "demo", "demo"), pytest.raises(DualfaceError, match="in use by another dualface demo"):
        run_demo(DemoConfig(output=tmp_path / "demo", iterations=2, progress=False), log=lambda _: None)
    assert list((tmp_path / "demo").iterdir()) == [tmp_path / "demo" / ".dualface.lock"]  # nothing else touched


def test_a_demo_checks_its_options_before_any_work_and_keeps_the_earlier_model(tmp_path):
    """A rerun with a bad --starter, or into a folder whose model another tool made, is refused before the
    extraction (minutes), and the earlier run's model, which its swap and report name, is kept."""
    earlier = tmp_path / "demo" / "model"
    earlier.mkdir(parents=True)
    (earlier / ".dualface-demo").touch()
    (earlier / "best.safetensors").write_bytes(b"the earlier run's model")
    readme = Path(__file__).resolve().parent.parent / "README.md"
    with pytest.raises(DualfaceError, match=r"README\.md: checkpoint is corrupt"):
        run_demo(DemoConfig(output=tmp_path / "demo", starter=readme, progress=False), log=lambda _: None)
    assert (earlier / "best.safetensors").read_bytes() == b"the earlier run's model"
    (tmp_path / "mine" / "model").mkdir(parents=True)
    with pytest.raises(DualfaceError, match="model exists and was not made by the demo"):
        run_demo(DemoConfig(output=tmp_path / "mine", progress=False), log=lambda _: None)
    assert not (tmp_path / "demo" / "faces").exists() and not (tmp_path / "mine" / "faces").exists()


def test_demo_runs_end_to_end(tmp_path):
    """The demo's whole path, with two training steps instead of hundreds (its numbers are measured by
    running `make demo`, see the README): the verdict on such a model must be "not usable". It runs over
    an earlier run's model, which the new one replaces once trained."""
    earlier = tmp_path / "demo" / "model"
    earlier.mkdir(parents=True)
    (earlier / ".dualface-demo").touch()
    (earlier / "step-00000001.safetensors").write_bytes(b"the earlier run's model")
    result = run_demo(DemoConfig(output=tmp_path / "demo", iterations=2, progress=False), log=lambda _: None)
    for what, path in result.files.items():
        assert path.exists(), what
    assert not (earlier / "step-00000001.safetensors").exists() and (earlier / ".dualface-demo").exists()
    assert not (tmp_path / "demo" / "model.training").exists()
    assert verify(result.files["side-by-side video"], samples=3).marked
    with av.open(str(result.files["side-by-side video"])) as video:
        assert (video.streams.video[0].width, video.streams.video[0].height) == (720, 288)
        assert video.streams.audio
    ev = result.evaluation
    assert ev.frames == 75 and "s1" in ev.reconstruction and ev.step is not None
    assert ev.scores["sharpness"].value is not None and not ev.usable


def test_a_source_is_the_target_only_where_dlib_says_so():
    def frames(to_target, to_source):
        return [FrameScore(i, (0, 0, 0), (0, 0, 0), (1, 1), 0.0, source_to_target=t, source_to_source=s)
                for i, (t, s) in enumerate(zip(to_target, to_source, strict=True))]  # fmt: skip

    assert _source_is_not_target(frames([0.7, 0.8], [0.3, 0.35])) == 1.0  # the source identity itself
    assert _source_is_not_target(frames([0.3, 0.35], [0.7, 0.8])) == 0.0  # the target, copied through
    assert _source_is_not_target(frames([0.75, 0.8], [0.7, 0.85])) == 1.0  # a third person, far from both
    assert _source_is_not_target(frames([0.3, 0.9], [None, None])) == 0.5  # no source identity known
    assert _source_is_not_target([]) is None


def test_eyes_that_never_blink_are_still_and_a_blink_is_not():
    steady = 0.3 + 0.01 * np.sin(np.arange(40))  # open eyes, landmark jitter
    assert eyes_still(steady)
    blink = steady.copy()
    blink[20:23] = 0.12  # GRID bbaf2n's blink reads 0.12-0.13
    assert not eyes_still(blink)
    assert not eyes_still(np.zeros(10)) and not eyes_still(np.array([]))
