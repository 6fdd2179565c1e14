"""Faults and bad input, done for real: runs killed with SIGKILL, a disk that fills up (a small tmpfs), files
crafted to break a reader, two writers on one folder.

What each test holds dualface to is what a careful user expects: a one-line error that names the file and
the cause, a non-zero exit, nothing overwritten, no temporary file left behind, no work lost. Run alone with
`pytest -m faults`. The disk-full tests mount a tmpfs, which needs root: where mounting is not allowed they
are skipped and say why.
"""

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from safetensors.torch import load as load_safetensors
from starlette.testclient import TestClient
from typer.testing import CliRunner

from conftest import S1, write_video
from dualface.alignments import PNG_KEY, load_alignments, read_face_record
from dualface.checkpoint import _metadata, checkpoints_in, digest, load_checkpoint
from dualface.cli import app
from dualface.config import AugmentConfig, ConvertConfig, ExtractConfig, TrainConfig
from dualface.convert import convert
from dualface.data import load_face_set
from dualface.errors import DualfaceError, TooLargeError
from dualface.extract import extract
from dualface.files import LOCK_NAME, FolderLock
from dualface.interrupts import stop_signals
from dualface.model import ModelConfig
from dualface.train import TrainSummary, train
from dualface.ui import create_app
from dualface.video import read_image
from dualface.watermark import verify

pytestmark = pytest.mark.faults

HEADERS = {"X-Dualface": "1"}  # what the UI's own pages send (the server refuses cross-site requests)
# The training every test here uses, in the CLI's words and as a config.
# A fixed thread count: auto picks per run (lanes on a busy CPU), and another count sums in another order.
STEPS = {"batch_size": 4, "iterations": 6, "save_every": 2, "preview_every": 100, "threads": 2}
TRAIN_FLAGS = [arg for key, value in STEPS.items() for arg in (f"--{key.replace('_', '-')}", str(value))]


def quick(face_dirs, model_dir: Path, **settings) -> TrainConfig:
    return TrainConfig(
        faces=list(face_dirs), model_dir=model_dir, progress=False, tensorboard=False, **{**STEPS, **settings}
    )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def dualface(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dualface", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal delivers it: a suite started in the background (`make test &`, some CI
        # runners) hands its children SIGINT ignored, and the interrupt tests would then test nothing.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def sigkill(process: subprocess.Popen) -> None:
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def leftovers(folder: Path) -> list[str]:
    """Hidden files a run leaves besides its lock: temporary files."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".") and p.name != LOCK_NAME)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def exists_with_data(pattern_folder: Path, pattern: str) -> bool:
    for path in pattern_folder.glob(pattern):
        try:
            if path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
    return False


@pytest.fixture(scope="module")
def straight(face_dirs, tmp_path_factory) -> tuple[Path, TrainSummary]:
    """An uninterrupted run: what every interrupted one must end up equal to."""
    model_dir = tmp_path_factory.mktemp("straight")
    return model_dir, train(quick(face_dirs, model_dir))


@pytest.fixture
def small_disk(tmp_path: Path):
    """mount(size) -> a fresh tmpfs of that size (e.g. "256k"), unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        try:
            result = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True, text=True
            )
        except FileNotFoundError:
            pytest.skip("no mount command: cannot make a small disk to fill")
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill (needs root): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


# ---------------------------------------------------------------------------------------------------------
# killed runs and two writers


def test_train_killed_twice_resumes_to_the_same_model(face_dirs, straight, tmp_path):
    model_dir = tmp_path / "m"
    args = ["train", *map(str, face_dirs), "-m", str(model_dir), *TRAIN_FLAGS, "--no-progress"]

    # Killed while starting up; meanwhile a second writer is refused, and names who holds the folder.
    first = dualface(*args)
    try:
        wait_for(lambda: b"train (pid" in read(model_dir / LOCK_NAME), 300, "the run to lock its folder")
        first.send_signal(signal.SIGSTOP)  # frozen while it starts up, however slow this machine is
        with pytest.raises(DualfaceError, match=r"in use by another dualface train \(pid \d+\)"):
            train(quick(face_dirs, model_dir))
    finally:
        sigkill(first)
    with FolderLock(model_dir, "test"):  # the kernel dropped the dead run's lock
        pass

    # Killed while it writes its second checkpoint (or, if the poll comes late, just after).
    second = dualface(*args)
    try:
        wait_for(
            lambda: (
                exists_with_data(model_dir, ".step-00000004*") or (model_dir / "step-00000004.safetensors").exists()
            ),
            300,
            "the second checkpoint",
        )
    finally:
        sigkill(second)
    assert checkpoints_in(model_dir)[0].name == "step-00000002.safetensors"

    resumed = train(quick(face_dirs, model_dir, resume=True))
    assert resumed.step == 6 and leftovers(model_dir) == []
    assert resumed.weights_sha256 == straight[1].weights_sha256  # nothing lost or replayed differently
    # The smoothed loss came back with the checkpoint: best.safetensors and --target-loss see the same values.
    final, reference = (load_checkpoint(d / "step-00000006.safetensors") for d in (model_dir, straight[0]))
    assert final.meta["losses"] == reference.meta["losses"]
    assert final.meta["best_loss"] == reference.meta["best_loss"]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_train_stopped_by_a_signal_saves_says_so_and_resumes_from_there(face_dirs, tmp_path, stop):
    """Ctrl-C, or SIGTERM (a job runner's stop), saves the step it stopped at and exits 130 with one line,
    so `train ... && convert ...` goes no further; a second signal does not cut that save short; and rows
    the log holds past the checkpoint a run resumes from (a killed run's) are dropped, not logged twice."""
    model_dir = tmp_path / "m"
    flags = ["--batch-size", "4", "--threads", "2", "--save-every", "100000", "--preview-every", "100000"]
    run = dualface("train", *map(str, face_dirs), "-m", str(model_dir), "--no-progress", *flags)
    log_csv = model_dir / "training_log.csv"
    wait_for(lambda: read(log_csv).count(b"\n") >= 4, 300, "three steps")
    run.send_signal(stop)
    time.sleep(0.05)
    run.send_signal(stop)  # a second one, as an impatient user or a runner's retry sends (see the next test)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted: the last checkpoint saved is kept: add --resume" in stderr
    (saved,) = checkpoints_in(model_dir)
    step = load_checkpoint(saved).step
    assert step >= 3 and leftovers(model_dir) == []

    rows = log_csv.read_text().splitlines()
    assert len(rows) == step + 1  # the header, then every step
    later = [f"{n}{rows[-1][rows[-1].index(',') :]}" for n in range(step + 1, step + 4)]
    log_csv.write_text("\n".join([*rows, *later, "99,1.0"]))  # what a run killed past its save leaves, torn
    train(quick(face_dirs, model_dir, resume=True, iterations=step + 2, save_every=100000))
    logged = [int(line.split(",")[0]) for line in log_csv.read_text().splitlines()[1:]]
    assert logged == list(range(1, step + 3))


def test_a_signal_interrupts_at_once_or_at_the_steps_end_and_later_ones_wait(caplog):
    """Before the loop a signal interrupts (nothing is worth saving yet); in it, one asks the loop to stop at
    its step's end (the weights and the step count saved together); any later one is only noted."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with stop_signals("the checkpoint") as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at once: never slept through
    with stop_signals("the checkpoint") as stop:
        stop.defer = True
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the step goes on
        assert stop.asked and "stopping at the end of this step" in caplog.text
        stop.defer = False
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # the save, not cut short
    assert "still saving the checkpoint" in caplog.text
    assert {s: signal.getsignal(s) for s in before} == before  # outside, signals are as they were


def test_resume_falls_back_past_a_corrupt_checkpoint(face_dirs, straight, tmp_path, caplog):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    for path in checkpoints_in(straight[0]):  # steps 2, 4 and 6
        (model_dir / path.name).write_bytes(path.read_bytes())
    latest = model_dir / "step-00000006.safetensors"
    latest.write_bytes(latest.read_bytes()[: 1 << 20])  # cut short, as by a failing disk
    summary = train(quick(face_dirs, model_dir, resume=True))
    assert "resuming from step-00000004.safetensors (step 4)" in caplog.text
    assert (model_dir / "step-00000006.safetensors.corrupt").exists()  # kept aside, not deleted
    assert summary.step == 6 and summary.weights_sha256 == straight[1].weights_sha256


def test_convert_and_the_demo_stopped_by_ctrl_c_say_what_they_keep(straight, tmp_path):
    """Ctrl-C ends a stage with exit 130 and one line on what is kept; the demo stops with its training,
    rather than going on to convert with what the interrupted training left."""
    output = tmp_path / "swap.mp4"
    output.write_bytes(b"an earlier conversion")
    run = dualface("convert", str(S1), "-m", str(straight[0]), "-o", str(output), "--to", "brbk7n", "--no-progress")
    wait_for(lambda: exists_with_data(tmp_path, ".swap*"), 300, "the conversion to be writing")
    run.send_signal(signal.SIGSTOP)  # held mid-write however fast this machine is: the Ctrl-C lands there
    run.send_signal(signal.SIGINT)
    run.send_signal(signal.SIGCONT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted: nothing was written to the output" in stderr
    assert output.read_bytes() == b"an earlier conversion" and leftovers(tmp_path) == []

    demo = tmp_path / "demo"
    run = dualface("demo", "-o", str(demo), "--iterations", "100000", "--no-progress")
    # the demo trains into a folder of its own, which takes the model's place only once trained
    wait_for(lambda: read(demo / "model.training" / "training_log.csv").count(b"\n") >= 3, 600, "the demo to train")
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted: a new demo run starts its training afresh" in stderr
    assert checkpoints_in(demo / "model.training") and "[3/4]" not in stdout and not (demo / "swap.mp4").exists()
    assert not (demo / "model").exists()


def test_extract_killed_reruns_to_the_same_faces(face_dirs, tmp_path):
    out = tmp_path / "faces"
    run = dualface("extract", str(S1), "-o", str(out), "--every", "3", "--no-progress")
    try:
        wait_for(lambda: len(list(out.glob("*.png"))) >= 3, 300, "the first faces")
        run.send_signal(signal.SIGSTOP)  # frozen mid-run, however slow this machine is, while a second run tries
        with pytest.raises(DualfaceError, match="in use by another dualface extract"):
            extract(ExtractConfig(inputs=[S1], output=out, every=3, progress=False))
    finally:
        sigkill(run)
    summary = extract(ExtractConfig(inputs=[S1], output=out, every=3, progress=False))
    assert not summary.errors and leftovers(out) == []
    reference = face_dirs[0]  # the same clip and settings, never interrupted
    assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in reference.glob("*.png"))
    name = f"{S1.stem}.alignments.json"
    ours, theirs = (load_alignments(folder / name) for folder in (out, reference))
    assert ours["complete"] and ours["frames_read"] == theirs["frames_read"]
    assert [(f["index"], len(f["faces"])) for f in ours["frames"]] == [
        (f["index"], len(f["faces"])) for f in theirs["frames"]
    ]
    # Where the killed run had saved its progress (a slow machine), the rerun resumed there and restarted the
    # landmark smoothing: the same faces, placed within a few pixels.
    for a, b in zip(ours["frames"], theirs["frames"], strict=True):
        for face_a, face_b in zip(a["faces"], b["faces"], strict=True):
            assert np.abs(np.subtract(face_a["landmarks"], face_b["landmarks"])).mean() < 3


def test_extract_stopped_by_sigterm_saves_says_so_and_resumes(face_dirs, tmp_path):
    """SIGTERM (a job runner's stop, `kill`) keeps what was extracted, as Ctrl-C does; by default it killed
    the run with nothing saved since the last periodic save, and no word."""
    out = tmp_path / "faces"
    run = dualface("extract", str(S1), "-o", str(out), "--every", "3", "--no-progress")
    try:
        wait_for(lambda: len(list(out.glob("*.png"))) >= 3, 300, "the first faces")
        run.send_signal(signal.SIGSTOP)  # held, so the signal lands mid-run however fast this machine is
        run.send_signal(signal.SIGTERM)
        run.send_signal(signal.SIGCONT)
        _, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130 and "interrupted: what was extracted is kept" in err and "Traceback" not in err
    alignments = load_alignments(out / f"{S1.stem}.alignments.json")
    recorded = {f["png"] for e in alignments["frames"] for f in e["faces"]}
    assert recorded and {p.name for p in out.glob("*.png")} == recorded and leftovers(out) == []
    summary = extract(ExtractConfig(inputs=[S1], output=out, every=3, progress=False))
    assert not summary.errors and len(list(out.glob("*.png"))) == 25


def test_convert_killed_leaves_a_temporary_file_the_next_run_removes(straight, s1_frames, tmp_path):
    output = tmp_path / "out.mp4"
    run = dualface("convert", str(S1), "-m", str(straight[0]), "--to", "brbk7n", "-o", str(output), "--no-progress")
    try:
        wait_for(lambda: exists_with_data(tmp_path, ".out.*.mp4"), 300, "frames to be written")
    finally:
        sigkill(run)
    assert leftovers(tmp_path) and not output.exists()  # what kill -9 leaves: a half-written hidden file
    clip = write_video(tmp_path / "short.mp4", s1_frames[:8])
    convert(ConvertConfig(input=clip, model=straight[0], output=output, to="brbk7n", progress=False))
    assert output.stat().st_size > 0 and leftovers(tmp_path) == []


def held(path: Path) -> tuple[str, dict]:
    """What a checkpoint holds, its seal checked: every tensor's bytes (weights, optimizer, average, RNG) and
    its metadata, but for the one entry no two runs share: the training time its clock had reached."""
    load_checkpoint(path)
    raw = path.read_bytes()
    meta = {k: v for k, v in _metadata(raw).items() if k not in ("seconds", "sha256")}
    return digest(load_safetensors(raw)), meta


def test_same_seed_gives_identical_checkpoints(face_dirs, straight, tmp_path):
    train(quick(face_dirs, tmp_path / "m", iterations=2))
    assert held(tmp_path / "m" / "step-00000002.safetensors") == held(straight[0] / "step-00000002.safetensors")


# ---------------------------------------------------------------------------------------------------------
# a full disk


def test_full_disk_during_checkpoint_save_keeps_the_last_good_one(face_dirs, straight, small_disk):
    size = (straight[0] / "step-00000002.safetensors").stat().st_size
    disk = small_disk(f"{math.ceil(size * 1.5 / 1024)}k")  # room for one checkpoint, not two
    model_dir = disk / "m"
    with pytest.raises(DualfaceError, match=r"cannot save checkpoint .*step-00000004.*No space left"):
        train(quick(face_dirs, model_dir))
    assert leftovers(model_dir) == []
    # best.safetensors needed no room of its own, and what was saved is whole.
    assert load_checkpoint(model_dir / "best.safetensors").step == 2
    assert held(model_dir / "step-00000002.safetensors") == held(straight[0] / "step-00000002.safetensors")


@pytest.mark.parametrize("save_every", [5.0, 0.0], ids=["at-the-end", "mid-input"])
def test_full_disk_during_extraction_leaves_a_consistent_folder(s1_frames, tmp_path, small_disk, save_every):
    clip = write_video(tmp_path / "clip.mp4", s1_frames[:12])
    disk = small_disk("256k")  # a few faces' worth
    out = disk / "faces"
    # Mid-input: a periodic save fails (its faces deleted), and the closing save must not record them again.
    with mock.patch("dualface.extract.SAVE_EVERY_S", save_every):
        summary = extract(ExtractConfig(inputs=[clip], output=out, progress=False))
    assert len(summary.errors) == 1 and "No space left on device" in summary.errors[0]
    assert str(out) in summary.errors[0] and "\n" not in summary.errors[0]
    alignments = out / "clip.alignments.json"
    recorded = (
        {f["png"] for e in load_alignments(alignments)["frames"] for f in e["faces"]} if alignments.exists() else set()
    )
    assert {p.name for p in out.glob("*.png")} == recorded and leftovers(out) == []
    # Space freed: the same command finishes the job.
    subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
    summary = extract(ExtractConfig(inputs=[clip], output=out, progress=False))
    assert not summary.errors and len(list(out.glob("*.png"))) == 12


def test_full_disk_during_conversion_overwrites_nothing(straight, s1_frames, tmp_path, small_disk):
    clip = write_video(tmp_path / "clip.mp4", s1_frames[:8])
    disk = small_disk("64k")
    output = disk / "out.mp4"
    previous = b"the previous conversion" * 2400  # 55 KB: a few KB of the disk are left free
    output.write_bytes(previous)
    with pytest.raises(DualfaceError, match=r"out\.mp4: cannot write the video"):
        convert(ConvertConfig(input=clip, model=straight[0], output=output, to="brbk7n", progress=False))
    assert output.read_bytes() == previous and leftovers(disk) == []


# ---------------------------------------------------------------------------------------------------------
# crafted inputs


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header then claims width x height (checksum fixed): a decompression bomb's header."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, width, height)  # IHDR's fields follow the signature and chunk head
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def blank_png(path: Path, side: int) -> Path:
    """A real, valid grey PNG of side x side pixels: it compresses to almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte, then the pixels
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


# dualface silences Pillow's own warning at import (video.py); pytest resets warning filters for each test.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_images_are_refused_before_decoding(straight, tmp_path):
    bomb = png_claiming(tmp_path / "bomb.png", 60000, 60000)
    with pytest.raises(TooLargeError, match=r"bomb\.png: image is too large"):
        read_image(bomb)
    summary = extract(ExtractConfig(inputs=[bomb], output=tmp_path / "faces", progress=False))
    assert len(summary.errors) == 1 and "bomb.png: image is too large" in summary.errors[0]
    assert [p.name for p in (tmp_path / "faces").iterdir()] == [LOCK_NAME]  # no alignments file for nothing
    with pytest.raises(DualfaceError, match=r"bomb\.png: image is too large"):
        convert(ConvertConfig(input=bomb, model=straight[0], output=tmp_path / "x.png", to="brbk7n", progress=False))
    with pytest.raises(DualfaceError, match=r"bomb\.png: image is too large"):
        verify(bomb)

    real = blank_png(tmp_path / "wide.png", 13000)
    assert real.stat().st_size < 1 << 20  # small on disk, 169 megapixels decoded
    started = time.perf_counter()
    with pytest.raises(TooLargeError, match=r"wide\.png: image is 13000x13000 pixels"):
        read_image(real)
    assert time.perf_counter() - started < 5  # refused from the header (decoding took 78 s)

    with TestClient(create_app(tmp_path / "studio", max_upload_mb=1)) as client:
        for path in (bomb, real):
            files = [("files", (path.name, path.read_bytes()))]
            response = client.post("/api/upload/a", files=files, headers=HEADERS)
            assert response.status_code == 413 and path.name in response.json()["error"]
        assert not any((tmp_path / "studio" / "footage" / "a").iterdir())


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda r: '{"landmarks": [[1, 2]', "not JSON"),
        (lambda r: {**r, "landmarks": "garbage"}, "landmarks is not 68x2 numbers"),
        (lambda r: {**r, "landmarks": [[1.0, 2.0], [3.0, 4.0]]}, "landmarks is not 68x2 numbers"),
    ],
)
def test_damaged_face_record_names_the_file(face_dirs, tmp_path, damage, words):
    source = sorted(face_dirs[0].glob("*.png"))[0]
    folder = tmp_path / "faces"
    folder.mkdir()
    damaged = damage(read_face_record(source))
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_KEY, damaged if isinstance(damaged, str) else json.dumps(damaged))
    with Image.open(source) as image:
        image.save(folder / "bad.png", pnginfo=info)
    with pytest.raises(DualfaceError, match=f"bad.png: its 'dualface' record is damaged \\({words}"):
        load_face_set(folder, ModelConfig.from_preset("lite"))


def test_truncated_video_is_reported_and_its_faces_kept(tmp_path):
    clip = tmp_path / "cut.mpg"
    clip.write_bytes(S1.read_bytes()[: S1.stat().st_size // 2])
    out = tmp_path / "faces"
    summary = extract(ExtractConfig(inputs=[clip], output=out, every=3, progress=False))
    assert len(summary.errors) == 1 and "cut.mpg: video is truncated or corrupt" in summary.errors[0]
    assert summary.inputs[0].faces_written == len(list(out.glob("*.png"))) > 0  # the readable part is kept
    assert "damage" in load_alignments(out / "cut.alignments.json")["source"]


@pytest.mark.parametrize(
    "option, value",
    [
        ("lr", math.nan),
        ("seed", -1),
        ("iterations", -1),
        ("iterations", 0),
        ("epochs", -1.0),
        ("eval_every", -3),
        ("max_faces", 0),
        ("batch_size", 100000),
        ("target_loss", math.inf),
    ],
)
def test_train_numbers_are_checked_before_any_work(tmp_path, option, value):
    with pytest.raises(DualfaceError, match=f"--{option.replace('_', '-')} must be"):
        TrainConfig(faces=[tmp_path / "a", tmp_path / "b"], model_dir=tmp_path / "m", **{option: value})


def test_numbers_are_checked_at_the_command_line_too(face_dirs, tmp_path):
    with pytest.raises(DualfaceError, match="--batch-size 26 is more than the 25 faces of"):
        train(quick(face_dirs, tmp_path / "m", batch_size=26))
    with pytest.raises(DualfaceError, match="--batch must be"):
        ConvertConfig(input=S1, model=tmp_path, output=tmp_path / "o.mp4", to="a", batch=100000)
    with pytest.raises(DualfaceError, match="--threshold must be"):
        ExtractConfig(inputs=[S1], output=tmp_path, threshold=math.nan)
    with pytest.raises(DualfaceError, match="eye-weight must be"):
        AugmentConfig(eye_weight=math.nan)
    # The command line's words reach the same checks: typer parses "nan" and "-1", the config refuses them.
    for flags, words in ((["--lr", "nan"], "--lr must be a positive number, not nan"), (["--seed", "-1"], "--seed")):
        result = CliRunner().invoke(app, ["train", *map(str, face_dirs), "-m", str(tmp_path / "m2"), *flags])
        assert isinstance(result.exception, DualfaceError) and words in str(result.exception)


# ---------------------------------------------------------------------------------------------------------
# the UI's jobs


def test_cancelled_job_reads_cancelled_only_once_its_processes_are_gone(tmp_path):
    # The command leaves a process in its group that outlives it after Cancel, as a slow exit on a busy machine
    # does: it goes only when the test says so. Until it is gone, the job is not over.
    release = tmp_path / "release"
    lingers = (
        "import os, signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True)\n"
        f"deadline = time.monotonic() + 300\n"
        f"while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)"
    )
    command = [
        sys.executable,
        "-c",
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {lingers!r}]); time.sleep(300)",
    ]
    with TestClient(create_app(tmp_path / "studio")) as client:
        job = client.app.state.studio.start("check", "lingers", [command])
        try:
            _cancel_and_watch(client, job, release, tmp_path / "studio")
        finally:
            release.touch()  # never leave the lingering process behind, even when the test fails


def _cancel_and_watch(client: TestClient, job: str, release: Path, studio: Path) -> None:
    def status() -> dict:
        state = next(j for j in client.get("/api/state").json()["jobs"] if j["id"] == job)
        assert state["status"] != "cancelled" or release.exists(), "cancelled while its processes still run"
        return state

    log = f"/api/jobs/{job}/log"
    wait_for(lambda: "ready" in client.get(log).text.splitlines(), 300, "the job's processes to start")
    assert client.post(f"/api/jobs/{job}/cancel", headers=HEADERS).status_code == 200
    # The runner has recorded the outcome; the lingering process keeps the job from being over.
    wait_for(lambda: status()["progress"] == "stopping", 300, "the job to be stopping")
    assert status()["status"] == "running"
    release.touch()
    wait_for(lambda: status()["status"] == "cancelled", 300, "the job to be cancelled")
    pid = json.loads((studio / "jobs" / f"{job}.json").read_text())["pid"]
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.killpg(pid, 0)


def test_ctrl_c_during_start_up_ends_without_a_traceback(tmp_path):
    # `train` loads torch once its options are read (they are torch-free): interrupt it while it loads. On a
    # busy machine the signal can land after the import, and the run then ends with its own one-line error
    # about the missing folders: try a few times, and never accept a traceback.
    codes = []
    for attempt in range(3):
        run = dualface("train", str(tmp_path / "a"), str(tmp_path / "b"), "-m", str(tmp_path / f"m{attempt}"))
        maps = Path(f"/proc/{run.pid}/maps")
        wait_for(lambda: b"torch" in read(maps), 300, "torch to be loading")  # noqa: B023 (called at once)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr
        codes.append(run.returncode)
        if run.returncode == 130:
            break
    assert codes[-1] == 130, codes
