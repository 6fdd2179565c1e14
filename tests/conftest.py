"""Fixtures built from the footage that ships in data/: never ../shared, never downloads."""

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from dualface.video import read_video

DATA = Path(__file__).resolve().parent.parent / "data"
S1_CLIPS = sorted((DATA / "grid" / "s1").glob("*.mpg"))
S1 = S1_CLIPS[0]
OTHER = DATA / "grid" / "speakers" / "brbk7n.mpg"


def dualface(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dualface", *args], capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and all(w in errors[0] for w in words), result.stderr


def frames_of(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    for index, frame in read_video(path):
        frames.append(frame)
        if index + 1 == count:
            break
    return frames


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 25,
    rotation: int = 0,
    times_ms: list[int] | None = None,
    keyframe_every: int | None = None,
    last_lasts_s: float | None = None,
) -> Path:
    """Encode RGB frames as H.264 with PyAV (the real codec). `rotation` (degrees counterclockwise) is
    written as a phone does, in the display matrix, the pixels left as they are; `times_ms` shows each
    frame at its own time (a variable-rate recording), on a millisecond clock; `keyframe_every` sets the
    GOP; `last_lasts_s` holds the last frame that long (a screen recording, a slideshow)."""
    ms = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        options = {"g": str(keyframe_every), "keyint_min": str(keyframe_every)} if keyframe_every else {}
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        timed = times_ms is not None or last_lasts_s is not None
        if timed:
            stream.time_base = stream.codec_context.time_base = ms
        times = times_ms if times_ms is not None else [round(1000 * i / fps) for i in range(len(frames))]

        def mux(packets) -> None:
            for packet in packets:
                if last_lasts_s is not None and packet.pts == times[len(frames) - 1]:
                    packet.duration = round(last_lasts_s / packet.time_base)
                container.mux(packet)

        for frame, at in zip(frames, times, strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if timed:
                picture.pts, picture.time_base = at, ms
            mux(stream.encode(picture))
        mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def s1_frames() -> list[np.ndarray]:
    return frames_of(S1, 75)


@pytest.fixture(scope="session")
def other_frames() -> list[np.ndarray]:
    return frames_of(OTHER, 75)


@pytest.fixture
def stills(tmp_path: Path, s1_frames: list[np.ndarray]) -> Path:
    """A folder of four photos of s1 (frames of the bundled clip, saved as JPEG and PNG)."""
    folder = tmp_path / "stills"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(s1_frames[i * 15]).save(folder / f"s1_{i}.{'jpg' if i % 2 else 'png'}")
    return folder


@pytest.fixture
def faceless_video(tmp_path: Path, s1_frames: list[np.ndarray]) -> Path:
    """Real footage with no face in it: the studio backdrop in the top-left corner of the GRID frames."""
    return write_video(tmp_path / "backdrop.mp4", [f[:96, :96].copy() for f in s1_frames[:20]])


@pytest.fixture(scope="session")
def face_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """Faces of the two bundled speakers, every 3rd frame: 25 each."""
    from dualface.config import ExtractConfig
    from dualface.extract import extract

    root = tmp_path_factory.mktemp("faces")
    for clip, name in ((S1, "s1"), (OTHER, "brbk7n")):
        extract(ExtractConfig(inputs=[clip], output=root / name, every=3, progress=False))
    return root / "s1", root / "brbk7n"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, face_dirs) -> Path:
    """A lite model trained for a few steps on the two speakers: enough to exercise conversion, not to
    swap well (quality is measured by bench/time_to_swap.py)."""
    from dualface.config import TrainConfig
    from dualface.train import train

    model_dir = tmp_path_factory.mktemp("model")
    train(
        TrainConfig(
            faces=list(face_dirs),
            model_dir=model_dir,
            batch_size=4,
            iterations=6,
            save_every=6,
            preview_every=6,
            progress=False,
            tensorboard=False,
        )
    )
    return model_dir
