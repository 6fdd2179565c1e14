"""Reading media: videos through PyAV (anything FFmpeg decodes), stills through Pillow.

Inputs are expanded into `Source`s: a video file is one source; an image file, or a folder's images
taken together, is one source of stills; a folder's videos are a source each.
"""

import itertools
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dualface.errors import DamagedMediaError, DualfaceError, TooLargeError
from dualface.types import Frame

log = logging.getLogger(__name__)

# Largest image decoded, in pixels: 8K UHD is 33 MP. A PNG of a few hundred KB can declare 13000 x 13000
# (169 MP: 3.3 GB once decoded), so the size is checked from the header, before a pixel is decoded.
MAX_PIXELS = 50_000_000
# Pillow's own bomb warning (from 89 MP) would only repeat, less clearly, what MAX_PIXELS refuses.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTENSIONS = {
    ".mp4",
    ".mov",
    ".m4v",
    ".avi",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".gif",
}


@dataclass(frozen=True)
class Source:
    """One unit of extraction: one video, or a set of stills (with one alignments file between them)."""

    path: Path
    kind: Literal["video", "images"]
    files: tuple[Path, ...] = field(default=())  # the stills, for kind == "images"

    @property
    def name(self) -> str:
        # "." names its folder; a link keeps its own name (resolved, an extraction would not be found again)
        return self.path.stem if self.path.is_file() else Path(os.path.abspath(self.path)).name


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int  # from the container; an estimate for formats that don't store it
    has_audio: bool


def expand_inputs(paths: Sequence[Path]) -> tuple[list[Source], list[tuple[Path, str]]]:
    """Turn command-line paths into sources, and (path, one-line problem) for each that can't be used."""
    sources: list[Source] = []
    problems: list[tuple[Path, str]] = []
    for path in paths:
        if not path.exists():
            problems.append((path, f"{path}: no such file or folder"))
        elif path.is_dir():
            entries = sorted(p for p in path.iterdir() if p.is_file())
            images = tuple(p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS)
            videos = [p for p in entries if p.suffix.lower() in VIDEO_EXTENSIONS]
            if images:
                sources.append(Source(path, "images", images))
            sources.extend(Source(p, "video") for p in videos)
            if not images and not videos:
                problems.append((path, f"{path}: folder holds no images or videos"))
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            sources.append(Source(path, "images", (path,)))
        else:
            sources.append(Source(path, "video"))  # let FFmpeg judge any other extension
    return sources, problems


def _open(path: Path) -> "av.container.InputContainer":
    try:
        # A localised encoder can write its metadata in Latin-1: read it as far as it goes.
        container = av.open(str(path), metadata_errors="replace")
    except av.error.FFmpegError as error:
        raise DualfaceError(f"{path}: not a readable video ({error.strerror or error})") from None
    if not container.streams.video:
        container.close()
        raise DualfaceError(f"{path}: has no video stream")
    return container


def _turns(frame: "av.VideoFrame | None") -> int:
    """Quarter turns, counterclockwise, that stand a frame upright: a phone stores portrait video
    sideways and says so in a display matrix, which players obey and the decoded pixels do not."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4


def probe_video(path: Path) -> VideoInfo:
    """A video's size (upright, as `read_video` hands its frames over), rate, frame count and audio."""
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        count = stream.frames
        if not count:
            duration = stream.duration * stream.time_base if stream.duration else (container.duration or 0) / 1e6
            count = round(float(duration) * fps)
        width, height = stream.width, stream.height
        if _turns(_first_frame(container, stream)) % 2:
            width, height = height, width
        return VideoInfo(width, height, fps, int(count), bool(container.streams.audio))


def _first_frame(container: "av.container.InputContainer", stream: "av.stream.Stream") -> "av.VideoFrame | None":
    """The first frame that decodes (a damaged first packet skipped, as `read_video` skips it)."""
    try:
        for packet in itertools.islice(container.demux(stream), 100):
            try:
                for frame in packet.decode():
                    return frame
            except av.error.FFmpegError:
                continue
    except av.error.FFmpegError:
        pass  # read_video says what is wrong with the file
    return None


def count_frames(path: Path) -> int:
    """Frames in a video, counted from its packets (demuxed, not decoded: fast)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as error:
            raise DamagedMediaError(f"{path}: video is truncated or corrupt ({error})") from None


def start_seconds(stream: "av.stream.Stream") -> float:
    """When a stream starts, in seconds on its container's clock (0 where the file does not say)."""
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def read_video(path: Path, times: list[float | None] | None = None) -> Iterator[tuple[int, Frame]]:
    """Every decodable frame of a video as (index, RGB frame), in order. Where `times` is given, each
    frame's presentation time (seconds from the stream's start; None where the file gives none) is
    appended to it before the frame is yielded: a variable-rate video's frames are not evenly spaced.

    Damaged packets are skipped so the rest of the video still comes through; after the last frame a
    DamagedMediaError says how many were lost, or, for a file cut short (fewer packets than the frames
    its header declares: an interrupted download), how many were read.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = start_seconds(stream)
        index = damaged = concealed = 0
        shown = 0.0  # when the last frame read leaves the screen, from the stream's start
        frame_s = 1 / float(stream.average_rate or 25)
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    damaged += 1
                    continue
                for frame in frames:
                    # A frame FFmpeg patched over missing data: a file cut short ends in one, with no error.
                    concealed += frame.is_corrupt
                    if frame.time is not None:  # its own duration: a screen recording holds its last for seconds
                        lasts = float(frame.duration * frame.time_base) if frame.duration else frame_s
                        shown = max(shown, frame.time - start + lasts)
                    if times is not None:
                        times.append(None if frame.time is None else frame.time - start)
                    # PyAV may hand back strided arrays, which dlib rejects.
                    yield index, np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), _turns(frame)))
                    index += 1
        except av.error.FFmpegError as error:  # the container itself, not one packet, broke
            raise DamagedMediaError(f"{path}: video is truncated or corrupt after frame {index} ({error})") from None
        if index == 0:
            raise DualfaceError(f"{path}: no frame could be decoded (corrupt or empty video)")
        if damaged:
            raise DamagedMediaError(f"{path}: video is corrupt: {damaged} damaged packets skipped, {index} frames read")
        if concealed:
            raise DamagedMediaError(
                f"{path}: video is truncated or corrupt: {concealed} of the {index} frames read are damaged"
            )
        # An MP4's sample table is written whole (first, for streaming), so a download cut short declares a
        # duration it lacks; other formats' are looser. Time, not frames: an edit list (a trim without
        # re-encoding) shows fewer frames than its table counts, and its duration says so.
        declared = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if "mp4" in container.format.name and declared - shown > max(2 * frame_s, 0.05 * declared):  # and MOV
            raise DamagedMediaError(
                f"{path}: video is truncated: {index} frames read, {shown:.2f} s of the {declared:.2f} s "
                "its header declares"
            )


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """Pillow's lazily opened image, refused with a one-line error (TooLargeError) when its header
    declares more than MAX_PIXELS; the pixels are decoded only when the caller asks for them."""
    try:
        image = Image.open(path)
    except FileNotFoundError:
        raise DualfaceError(f"{path}: no such file") from None
    except Image.DecompressionBombError:
        raise TooLargeError(f"{path}: image is too large to read (over {MAX_PIXELS // 10**6} megapixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DualfaceError(f"{path}: not a readable image ({error})") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise TooLargeError(
                f"{path}: image is {width}x{height} pixels, more than the {MAX_PIXELS // 10**6} megapixels "
                "dualface reads; scale it down first"
            )
        yield image


def read_image(path: Path) -> Frame:
    """An image file as an RGB frame, turned upright by its EXIF orientation."""
    with open_image(path) as image:
        try:
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I"):  # 16/32-bit grey: Pillow's own convert clips it all to white
                return _grey_to_rgb(np.asarray(image), sixteen=image.mode.startswith("I;16"))
            return np.ascontiguousarray(np.asarray(image.convert("RGB")))
        except (OSError, SyntaxError, ValueError) as error:
            raise DualfaceError(f"{path}: not a readable image ({error})") from None


def _grey_to_rgb(grey: np.ndarray, sixteen: bool) -> Frame:
    """A wide-integer grey image as 8-bit RGB: 16-bit values scaled down, and a 32-bit image holding
    16-bit ones (as Pillow opens 16-bit PNGs) likewise; one that stays within 8 bits kept as it is."""
    grey = grey.astype(np.float64)
    if sixteen or grey.max() > 255:
        grey = grey / 257
    grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def first_of(errors: list[str]) -> str:
    """The first of `read_frames`' unreadable stills, and how many more there were."""
    return errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def read_frames(
    source: Source, unreadable: list[str] | None = None, times: list[float | None] | None = None
) -> Iterator[tuple[int, Frame]]:
    """The frames of a source; for stills the index is the image's position in `source.files`. An
    unreadable still is logged and skipped, so one bad photo doesn't stop a folder; its one-line error is
    added to `unreadable`, where given. A video's frame times go to `times` (see `read_video`)."""
    if source.kind == "video":
        yield from read_video(source.path, times)
        return
    for index, path in enumerate(source.files):
        try:
            frame = read_image(path)
        except DualfaceError as error:
            if len(source.files) == 1:
                raise  # a lone image that can't be read is the whole input failing
            log.warning("%s", error)
            if unreadable is not None:
                unreadable.append(str(error))
            continue
        yield index, frame
