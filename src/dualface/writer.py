"""Writing media: H.264 video that keeps the source's sound, and still images, each labelled as synthetic.

Everything is written to a hidden temporary file beside the output and renamed over it only when
complete, so an interrupted conversion never leaves a broken file where a good one was.
"""

import fcntl
import io
import logging
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
from dualface.video import probe_video, start_seconds
from dualface.watermark import CB_OF_B, mark_i420

log = logging.getLogger(__name__)

VIDEO_OUTPUTS = {".mp4", ".mov", ".m4v", ".mkv"}
IMAGE_OUTPUTS = {".png", ".jpg", ".jpeg"}
# Audio codecs an MP4/MOV holds and browsers play; anything else (GRID's MPEG-1 Layer II, PCM) becomes AAC.
MP4_AUDIO = {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"}
# The sample rates AAC has tables for (its encoder refuses others).
AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
# The usual layout for each channel count (FFmpeg's defaults): what a file that leaves its layout unspecified
# (FFmpeg calls it "2 channels") most likely holds; AAC takes only layouts whose channels are named.
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


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
) -> Iterator[Callable[..., None]]:
    """Yields `write(frame, seconds=None)` for RGB frames; on a clean exit the video, with the audio of
    `like` (the source video) muxed in sync, replaces `path`. On an error nothing at `path` changes.

    Frames are `like`'s upright size (`probe_video`) unless `size` (width, height) says otherwise. Each is
    shown at `seconds` from the video's start (the source frame's time, `read_video`'s `times`), so a
    variable-rate source keeps its timing and its sync; without it, at `like`'s frame rate. `tags` are
    added to the container's metadata. Every frame carries the invisible synthetic mark unless `mark` is
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
                if size is None:
                    upright = probe_video(like)  # a phone's sideways-stored video, turned as read_video turns it
                    size = (upright.width, upright.height)
                width, height = size
                # an odd-sized source gets one replicated edge row/column (`write` pads)
                video = h264_stream(out, rate, width + width % 2, height + height % 2, crf, preset)
                # The source's own clock, fine enough for any spacing of its frames. Frames are timed on this
                # local copy, never on `video.time_base`: the muxer may replace that when it writes its header
                # at the first packet (Matroska's 1/1000, some frames into the stream), and `mux` rescales
                # each packet from the encoder's clock to whatever the stream's is by then.
                clock = video.time_base = video.codec_context.time_base = video_in.time_base or 1 / rate
                step = max(1, round(1 / (rate * clock)))  # one frame at the average rate
                audio = _Audio(audio_source, out, start=start_seconds(video_in), mp4=mp4, name=like)
                count, last = 0, None

                def write(frame: Frame, seconds: float | None = None) -> None:
                    nonlocal count, last
                    if frame.shape[:2] != (height, width):
                        raise DualfaceError(
                            f"{like}: frame {count} is {frame.shape[1]}x{frame.shape[0]}, the frames before it "
                            f"{width}x{height}: a video whose size changes part-way cannot be converted"
                        )
                    pad = ((0, video.height - frame.shape[0]), (0, video.width - frame.shape[1]), (0, 0))
                    if any(p[1] for p in pad[:2]):
                        frame = np.pad(frame, pad, mode="edge")
                    i420 = rgb_to_i420(frame)
                    if mark:
                        mark_i420(i420)
                    picture = av.VideoFrame.from_ndarray(i420, format="yuv420p")
                    last = frame_pts(seconds, count, last, rate, clock)
                    picture.pts, picture.time_base, picture.duration = last, clock, step
                    try:
                        for packet in video.encode(picture):
                            out.mux(packet)
                        count += 1
                        audio.up_to(float((last + step) * clock))
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


def frame_pts(seconds: float | None, count: int, last: int | None, rate: Fraction, time_base: Fraction) -> int:
    """The pts (in `time_base`) of frame `count`: at `seconds` where given, else at the frame rate. A time
    that does not come after the last frame's (a clock reset where two recordings were joined) puts the
    frame one frame-rate step after the last, so the pts always rise."""
    step = max(1, round(1 / (rate * time_base)))
    # From the index, not the last pts plus a rounded step: 29.97 fps on a 1/1000 clock would drift 1%.
    pts = round((Fraction(count) / rate if seconds is None else seconds) / time_base)
    if last is not None and pts <= last:
        return last + step
    return max(pts, 0)


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


def aac_settings(rate: int, layout: str, channels: int) -> tuple[int, str]:
    """The sample rate and channel layout to encode a source's sound as AAC: its own where AAC takes them,
    else 48 kHz (for a studio's 192 kHz or an odd rate, which AAC has no table for) and FFmpeg's default
    layout for the channel count (where the file names no layout)."""
    if rate not in AAC_RATES:
        rate = 48000
    if layout == f"{channels} channels":  # FFmpeg's name for a layout the file leaves unspecified
        layout = STANDARD_LAYOUTS.get(channels, layout)
    return rate, layout


class _Audio:
    """The source's audio, muxed into the output as the video catches up with it (so the file is
    interleaved), shifted so that it keeps its offset from the first video frame. Copied where the
    container takes the codec, else re-encoded to AAC. Only the first audio stream is kept."""

    def __init__(
        self,
        source: "av.container.InputContainer",
        out: "av.container.OutputContainer",
        start: float,
        mp4: bool,
        name: Path | str = "",
    ):
        self.out, self.start, self.packets, self.stream = out, start, None, None
        if not source.streams.audio:
            return
        stream_in = source.streams.audio[0]
        if len(source.streams.audio) > 1:
            language = stream_in.metadata.get("language")
            log.warning(
                "%s: has %d audio streams; only the first (stream %d%s) is kept",
                name,
                len(source.streams.audio),
                stream_in.index,
                f", {language}" if language else "",
            )
        # The codec, not the decoder's name: MP3 decodes as "mp3float", AAC can as "aac_fixed".
        self.copy = not mp4 or stream_in.codec_context.codec.canonical_name in MP4_AUDIO
        if self.copy:
            self.stream = out.add_stream_from_template(stream_in)
        else:
            rate, layout = aac_settings(stream_in.rate, stream_in.layout.name, stream_in.channels)
            self.stream = out.add_stream("aac", rate=rate, layout=layout)
            self.stream.bit_rate = 192_000
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
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
                    self._encode(None)
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
            self._encode(frame)

    def _encode(self, frame: "av.AudioFrame | None") -> None:
        """Encode a decoded frame (None: the end) through the resampler, which also turns its pts to the
        output's rate."""
        for resampled in self.resampler.resample(frame):
            for out_packet in self.stream.encode(resampled):
                self.out.mux(out_packet)
        if frame is None:
            for out_packet in self.stream.encode(None):
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
