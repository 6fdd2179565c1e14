"""Writing media: H.264 video that keeps the source's sound, and still images, each labelled as synthetic.

Everything is written to a hidden temporary file beside the output and renamed over it only when
complete, so an interrupted conversion never leaves a broken file where a good one was.
"""

import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from dualface import __version__
from dualface.errors import DualfaceError
from dualface.files import FILE_MODE, remove_stale_temps, write_output
from dualface.provenance import SYNTHETIC_NOTICE, png_info
from dualface.types import Frame
from dualface.watermark import CB_OF_B, mark_i420

VIDEO_OUTPUTS = {".mp4", ".mov", ".m4v", ".mkv"}
IMAGE_OUTPUTS = {".png", ".jpg", ".jpeg"}
# Audio codecs an MP4/MOV holds and browsers play; anything else (GRID's MPEG-1 Layer II, PCM) becomes AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"}


def metadata(kind: str) -> dict[str, str]:
    """Container tags that label a file as synthetic."""
    return {
        "comment": f"{SYNTHETIC_NOTICE} ({kind})",
        "description": SYNTHETIC_NOTICE,
        "encoded_by": f"dualface {__version__}",
        "dualface_synthetic": "true",
    }


def frame_rate(stream: "av.video.stream.VideoStream") -> Fraction:
    """A video stream's frame rate (its average; 25 where the file says nothing)."""
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    return Fraction(rate).limit_denominator(100000)


def h264_stream(out: "av.container.OutputContainer", rate: Fraction, width: int, height: int, crf: int, preset: str):
    """An H.264 (yuv420p) stream in `out`: every video dualface writes, swaps and the UI's browser copies
    alike. yuv420p needs even sides: the caller pads (a swap loses no pixel) or crops (a preview copy)."""
    video = out.add_stream("libx264", rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.time_base = 1 / rate
    video.options = {"crf": str(crf), "preset": preset}
    return video


@contextmanager
def video_writer(
    path: Path,
    like: Path,
    crf: int = 18,
    preset: str = "veryfast",
    kind: str = "face swap",
    size: tuple[int, int] | None = None,
    tags: dict[str, str] | None = None,
    mark: bool = True,
) -> Iterator[Callable[[Frame], None]]:
    """Yields `write(frame)` for RGB frames; on a clean exit the video, with the audio of `like` (the
    source video) muxed in sync, replaces `path`. On an error nothing at `path` changes.

    Frames are `like`'s size unless `size` (width, height) says otherwise; its frame rate is kept. `tags`
    are added to the container's metadata. Every frame carries the invisible synthetic mark unless `mark` is
    off (a benchmark's plain transcode; `convert --no-watermark`)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_OUTPUTS:
        raise DualfaceError(f"{path}: a video output must end in {', '.join(sorted(VIDEO_OUTPUTS))}")
    remove_stale_temps(path.parent, f"{temp_prefix(path)}*{path.suffix}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=path.suffix)
    # Held (locked) until the end: marks the file as being written, so only a killed run's leftovers are
    # ever taken for orphans (remove_stale_temps).
    fcntl.flock(fd, fcntl.LOCK_EX)
    in_body = False
    try:
        with av.open(str(like)) as source, av.open(str(like)) as audio_source:
            video_in = source.streams.video[0]
            rate = frame_rate(video_in)
            mp4 = path.suffix.lower() != ".mkv"
            options = {"movflags": "use_metadata_tags+faststart"} if mp4 else {}
            with av.open(tmp, "w", format="matroska" if not mp4 else None, options=options) as out:
                out.metadata.update({**metadata(kind), **(tags or {})})
                width, height = size or (video_in.width, video_in.height)
                # an odd-sized source gets one replicated edge row/column (`write` pads)
                video = h264_stream(out, rate, width + width % 2, height + height % 2, crf, preset)
                audio = _Audio(audio_source, out, start=_start_seconds(video_in), mp4=mp4)
                count = 0

                def write(frame: Frame) -> None:
                    nonlocal count
                    pad = ((0, video.height - frame.shape[0]), (0, video.width - frame.shape[1]), (0, 0))
                    if any(p[1] for p in pad[:2]):
                        frame = np.pad(frame, pad, mode="edge")
                    i420 = rgb_to_i420(frame)
                    if mark:
                        mark_i420(i420)
                    picture = av.VideoFrame.from_ndarray(i420, format="yuv420p")
                    picture.pts = count
                    try:
                        for packet in video.encode(picture):
                            out.mux(packet)
                        count += 1
                        audio.up_to(float(count / rate))
                    except (av.error.FFmpegError, OSError) as error:
                        raise _cannot_write(path, error) from None

                # What the caller's own code raises (reading its input) is its error, not this file's.
                in_body = True
                yield write
                in_body = False
                for packet in video.encode(None):
                    out.mux(packet)
                audio.up_to(float("inf"))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except (av.error.FFmpegError, OSError) as error:  # a full disk, mostly
        if in_body:
            raise
        raise _cannot_write(path, error) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
        os.close(fd)


def _cannot_write(path: Path, error: Exception) -> DualfaceError:
    detail = error if isinstance(error, av.error.FFmpegError) else (getattr(error, "strerror", None) or error)
    return DualfaceError(f"{path}: cannot write the video ({detail})")


# BT.601 studio-range chroma, as libswscale computes it: Cb and Cr = this matrix times (R, G, B, 1).
_CHROMA = np.array([[-0.148223, -0.290993, CB_OF_B, 128], [0.439216, -0.367788, -0.071427, 128]], np.float32)


def rgb_to_i420(frame: Frame) -> np.ndarray:
    """An RGB frame (even sides) as an I420 picture ((H * 3/2, W) uint8): what libswscale gives the encoder,
    several times faster. Luma from OpenCV; chroma from the 2x2 average of RGB (OpenCV's own I420 takes one
    pixel of four, which aliases edges in colour)."""
    height, width = frame.shape[:2]
    picture = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
    small = cv2.resize(frame, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    chroma = cv2.transform(small, _CHROMA)  # (H/2, W/2, 2) uint8, rounded and clipped
    planes = picture[height:].reshape(2, height // 2, width // 2)
    planes[0], planes[1] = chroma[..., 0], chroma[..., 1]
    return picture


def temp_prefix(path: Path) -> str:
    """The start of the hidden name a video is written under until it is complete."""
    return f".{path.stem}.dualface-"


def _start_seconds(stream: "av.stream.Stream") -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


class _Audio:
    """The source's audio, muxed into the output as the video catches up with it (so the file is
    interleaved), shifted so that it keeps its offset from the first video frame. Copied where the
    container takes the codec, else re-encoded to AAC."""

    def __init__(
        self, source: "av.container.InputContainer", out: "av.container.OutputContainer", start: float, mp4: bool
    ):
        self.out, self.start, self.packets, self.stream = out, start, None, None
        if not source.streams.audio:
            return
        stream_in = source.streams.audio[0]
        self.copy = not mp4 or stream_in.codec_context.name in MP4_AUDIO
        if self.copy:
            self.stream = out.add_stream_from_template(stream_in)
        else:
            self.stream = out.add_stream("aac", rate=stream_in.rate, layout=stream_in.layout.name)
            self.stream.bit_rate = 192_000
        self.stream_in = stream_in
        self.packets = source.demux(stream_in)
        self.pending: av.Packet | None = None

    def up_to(self, seconds: float) -> None:
        """Mux the audio that plays before `seconds` of output video."""
        if self.packets is None:
            return
        tb = self.stream_in.time_base
        while True:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                self.packets = None
                if not self.copy:
                    for out_packet in self.stream.encode(None):
                        self.out.mux(out_packet)
                return
            if packet.pts is None or packet.dts is None:
                continue
            at = float(packet.pts * tb) - self.start
            if at >= seconds:
                self.pending = packet
                return
            if at < 0:  # sound from before the first picture
                continue
            self._mux(packet, shift=round(self.start / tb))

    def _mux(self, packet: "av.Packet", shift: int) -> None:
        if self.copy:
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = self.stream
            self.out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = round((float(frame.pts * frame.time_base) - self.start) * self.stream_in.rate)
            frame.time_base = Fraction(1, self.stream_in.rate)
            for out_packet in self.stream.encode(frame):
                self.out.mux(out_packet)


def write_image(path: Path, image: Frame, kind: str = "face swap") -> None:
    """A PNG (with synthetic-labelled text chunks) or a JPEG (with the label as its comment), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_OUTPUTS:
        raise DualfaceError(f"{path}: an image output must end in {', '.join(sorted(IMAGE_OUTPUTS))}")
    buffer = io.BytesIO()
    if suffix == ".png":
        Image.fromarray(image).save(buffer, "PNG", pnginfo=png_info(kind))
    else:
        Image.fromarray(image).save(buffer, "JPEG", quality=95, comment=f"{SYNTHETIC_NOTICE} ({kind})".encode())
    write_output(path, buffer.getvalue())
