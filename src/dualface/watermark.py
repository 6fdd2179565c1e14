"""The invisible mark on every frame dualface writes, and `dualface verify`, which reads it back.

The scheme is invisible-watermark's "dwtDctSvd" (github.com/ShieldMnt/invisible-watermark, MIT licence):
take the U chroma plane, split it by a one-level Haar wavelet, cut the low band into 4x4 blocks, and
quantise each block's largest singular value so that its remainder modulo SCALE says one bit of the
payload; the 32 bits repeat over all blocks and are read back by a majority vote. Chroma and the low
band are what H.264 keeps: 4:2:0 subsampling averages 2x2 pixels, exactly what the low band is.

Why not call the library (measured here, 2-core CPU): its encoder loops over blocks in Python, 114 ms
(dwtDct) to 420 ms (dwtDctSvd) per 720p frame against a whole per-frame budget of 66 ms; it requires torch
at import and opencv-python, which fights our opencv-python-headless over `cv2`; its dwtDct misreads bits
before any compression, and its dwtDctSvd, which swaps two wavelet bands when it rebuilds the image and
truncates instead of rounding, did not survive crf 23. This is the same scheme as array operations (the
DCT is left out: it does not change singular values; the top singular triplet comes from a few power
iterations), about 7 ms per 720p frame, and the library's own WatermarkDecoder reads its marks.
SCALE 56 read back on every frame after libx264 up to crf 28 on 720p footage and up to crf 23 at GRID's
360x288 (crf 18 is our default), for a PSNR of about 38 dB, almost all of it in chroma.
"""

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from dualface.errors import DualfaceError
from dualface.provenance import SYNTHETIC_NOTICE
from dualface.types import Frame
from dualface.video import IMAGE_EXTENSIONS, probe_video, read_image

PAYLOAD = b"dfsw"  # "dualface swap": 32 bits
BITS = np.unpackbits(np.frombuffer(PAYLOAD, np.uint8)).astype(np.float32)
SCALE = 56.0  # quantisation step: larger survives harder compression, and shows more
BLOCK = 4
MAX_BIT_ERRORS = 3  # of 32: an unmarked frame reads this close to the payload about once in 10 million
MIN_SIDE = 256  # smaller images are too few blocks for a reliable vote; they get metadata only


def _blocks(low: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(4, 4, N) blocks of a low band (block elements first: long vector ops), and the grid's rows and
    columns."""
    rows, cols = low.shape[0] // BLOCK, low.shape[1] // BLOCK
    blocks = low[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).transpose(1, 3, 0, 2)
    return np.ascontiguousarray(blocks.reshape(BLOCK, BLOCK, rows * cols)), rows, cols


def _low_band(u: np.ndarray) -> np.ndarray:
    """The Haar low band of a full-size U plane: (a+b+c+d)/2 over each 2x2 cell."""
    return cv2.resize(u, (u.shape[1] // 2, u.shape[0] // 2), interpolation=cv2.INTER_AREA) * 2


def _top_singular(blocks: np.ndarray, iterations: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest singular value and its vectors (u, v) of every block, by power iteration on B^T B."""
    gram = np.einsum("kin,kjn->ijn", blocks, blocks)
    v = gram.sum(1)
    for _ in range(iterations):
        v = np.einsum("ijn,jn->in", gram, v)
        v /= np.sqrt((v * v).sum(0)) + 1e-12
    bv = np.einsum("ijn,jn->in", blocks, v)
    s = np.sqrt((bv * bv).sum(0))
    return s, bv / (s + 1e-12), v


def _u_plane(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV)
    even = (frame.shape[0] // 4 * 4, frame.shape[1] // 4 * 4)
    return yuv, yuv[: even[0], : even[1], 1].astype(np.float32)


def _cell_change(low: np.ndarray) -> np.ndarray:
    """What to add to each 2x2 cell of the U plane (one value per cell: the low band's shape, cut to whole
    blocks) so that every block's top singular value says its bit."""
    blocks, rows, cols = _blocks(low)
    s, left, right = _top_singular(blocks)
    bit = np.resize(BITS, rows * cols)
    # Halved: a low-band coefficient is spread over its 2x2 pixels as half its value each.
    change = ((np.floor(s / SCALE) + 0.25 + 0.5 * bit) * SCALE - s) * 0.5
    delta = (left[:, None, :] * right[None, :, :] * change).reshape(BLOCK, BLOCK, rows, cols)
    return delta.transpose(2, 0, 3, 1).reshape(rows * BLOCK, cols * BLOCK)


def embed_watermark(frame: Frame) -> Frame:
    """A copy of an RGB frame carrying the mark (frames under 256 px a side are returned unmarked)."""
    if min(frame.shape[:2]) < MIN_SIDE:
        return frame.copy()
    yuv, u = _u_plane(frame)
    delta = _cell_change(_low_band(u))
    h, w = delta.shape[0] * 2, delta.shape[1] * 2
    u[:h, :w] += cv2.resize(delta, (w, h), interpolation=cv2.INTER_NEAREST)
    yuv[: u.shape[0], : u.shape[1], 1] = np.clip(np.rint(u), 0, 255).astype(np.uint8)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)


# The writer's I420 Cb plane (writer.rgb_to_i420) is the U plane above, averaged over 2x2 cells (the low band's
# cells) and scaled to BT.601's studio range: U - 128 = (B - Y) * 0.492111 (OpenCV's YUV), Cb - 128 =
# (B - Y) * CB_OF_B / (1 - 0.114), where CB_OF_B is Cb's blue coefficient.
CB_OF_B = 0.439216
CB_TO_U = 0.492111 / (CB_OF_B / 0.886)


def mark_i420(picture: np.ndarray) -> None:
    """Mark an I420 picture ((H * 3/2, W) uint8, as writer.rgb_to_i420 gives) in place: the same mark as
    `embed_watermark`, written straight into the chroma the encoder takes, so a video frame needs no RGB ->
    YUV -> RGB round trip of its own. Pictures under 256 px a side are left unmarked."""
    height, width = picture.shape[0] * 2 // 3, picture.shape[1]
    if min(height, width) < MIN_SIDE:
        return
    cb = picture[height:].reshape(-1)[: (height // 2) * (width // 2)].reshape(height // 2, width // 2)
    even = (height // 4 * 2, width // 4 * 2)  # the U plane's cells that embed_watermark's plane covers
    low = ((cb[: even[0], : even[1]].astype(np.float32) - 128) * CB_TO_U + 128) * 2
    delta = _cell_change(low) / CB_TO_U
    h, w = delta.shape
    cb[:h, :w] = np.clip(np.rint(cb[:h, :w] + delta), 0, 255).astype(np.uint8)


def read_watermark(frame: Frame) -> int:
    """How many of the payload's 32 bits this RGB frame reads wrongly: 0 for a clean mark, ~16 for none."""
    if min(frame.shape[:2]) < MIN_SIDE:
        return len(BITS)
    _, u = _u_plane(frame)
    blocks, _, _ = _blocks(_low_band(u))
    s = _top_singular(blocks)[0]
    bit = (s % SCALE) > SCALE / 2
    slot = np.arange(len(s)) % len(BITS)
    votes = np.bincount(slot, bit, len(BITS)) / np.bincount(slot, None, len(BITS))
    return int(((votes > 0.5) != BITS.astype(bool)).sum())


def has_watermark(frame: Frame) -> bool:
    return read_watermark(frame) <= MAX_BIT_ERRORS


@dataclass
class Verification:
    frames: list[tuple[int, bool]] = field(default_factory=list)  # (frame index, mark found)
    metadata: str = ""  # the synthetic label in the file's metadata, if any

    @property
    def found(self) -> int:
        return sum(found for _, found in self.frames)

    @property
    def marked(self) -> bool:
        return bool(self.frames) and self.found >= len(self.frames) / 2

    too_small: bool = False  # frames under MIN_SIDE carry no mark: only the metadata can say

    @property
    def synthetic(self) -> bool:
        """Labelled by dualface: the mark found, or, where the frames are too small to carry it, the
        metadata's label (dualface's own small outputs carry that alone; `verify x && ...` must take them)."""
        return self.marked or (self.too_small and bool(self.metadata))

    @property
    def verdict(self) -> str:
        if self.too_small and self.metadata:
            return f"made by dualface (synthetic), says the metadata; the watermark cannot be read under {MIN_SIDE} px"
        if self.too_small:
            return f"frames under {MIN_SIDE} px carry no watermark; the metadata says nothing"
        return "made by dualface (synthetic)" if self.marked else "no dualface watermark"


def verify(path: Path, samples: int = 30) -> Verification:
    """Look for the mark on `samples` frames spread over a video (0: all of them), or on an image."""
    path = Path(path)
    if path.is_dir():
        raise DualfaceError(f"{path}: a folder, not a video or image file")
    if not path.is_file():
        raise DualfaceError(f"{path}: no such file")
    report = Verification()
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        image = read_image(path)
        report.too_small = min(image.shape[:2]) < MIN_SIDE
        report.frames.append((0, has_watermark(image)))
        with Image.open(path) as image:
            text = {**getattr(image, "text", {}), **image.info}
        # The notice itself (a PNG's Description, a JPEG's comment); "dualface:synthetic" is only a flag.
        label = text.get("Description") or text.get("comment") or ""
        label = label.decode(errors="replace") if isinstance(label, bytes) else str(label)
        if text.get("dualface:synthetic") == "true" or SYNTHETIC_NOTICE in label:
            report.metadata = label or SYNTHETIC_NOTICE
        return report
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DualfaceError(f"{path}: has no video stream")
            tags = {k.lower(): v for k, v in container.metadata.items()}  # Matroska upper-cases tag names
            report.metadata = tags.get("comment", "") if tags.get("dualface_synthetic") else ""
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            report.too_small = min(stream.width, stream.height) < MIN_SIDE
            total = stream.frames or probe_video(path).frame_count  # an estimate where not stored
            wanted = None
            if samples and total > samples:
                wanted = set(np.linspace(0, total - 1, samples).round().astype(int).tolist())
            for index, frame in enumerate(container.decode(stream)):
                if wanted is None or index in wanted:
                    report.frames.append((index, has_watermark(frame.to_ndarray(format="rgb24"))))
    except av.error.FFmpegError as error:
        raise DualfaceError(f"{path}: not a readable video or image ({error})") from None
    return report
