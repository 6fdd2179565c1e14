"""Stage 3, conversion: swap the faces of a video (or of images) and write the result with its sound.

Per frame: find the faces exactly as extraction does (the same tracker, or an alignments file), cut each
to the model's crop, draw it with the target identity's decoder (frames are batched through the model),
match its colour to the source face, and paste it back through the inverse alignment with a feathered
mask. Temporal smoothing, on by default, works at three places where a swap shimmers: the landmarks that
place the face (the 1-euro filter of extraction), the mask, and the colour statistics (both averaged
over the frames before, in the face's own aligned coordinates, so head motion doesn't smear them).
"""

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dualface.align import align_matrix, compose, invert, transform_points
from dualface.alignments import load_alignments
from dualface.color import COLOR_TRANSFERS
from dualface.errors import DamagedMediaError, DualfaceError
from dualface.files import ensure_writable_dir
from dualface.identity import SAME_PERSON, distance
from dualface.masks import MASKS
from dualface.model import Autoencoder
from dualface.prefetch import prefetch
from dualface.track import FaceTracker, TrackerConfig
from dualface.types import Frame, Landmarks, Matrix
from dualface.video import Source, expand_inputs, probe_video, read_frames
from dualface.watermark import embed_watermark
from dualface.writer import IMAGE_OUTPUTS, video_writer, write_image

log = logging.getLogger(__name__)

MASK_SIZE = 256  # masks are drawn and feathered in an aligned crop this large, then warped into the frame
BLENDS = ("alpha", "poisson")
MAX_BATCH = 256  # frames held in memory at once: 256 decoded 1080p frames are already 1.6 GB


@dataclass
class ConvertConfig:
    """Settings of `dualface convert`."""

    input: Path
    model: Path
    output: Path
    to: str
    source: str | None = None  # --from: swap only faces of this identity
    alignments: Path | None = None  # reuse an extraction instead of detecting again
    mask: str = "extended"  # hull, extended, or learned (the model's own mask head)
    erode: float = 0.0  # % of the mask crop: shrink the mask (negative grows it)
    feather: float = 5.0  # % of the mask crop: width of the soft edge
    color: str = "avg"
    blend: Literal["alpha", "poisson"] = "alpha"
    smooth: bool = True  # temporal smoothing of placement, mask and colour
    smooth_weight: float = 0.5  # share of the current frame in the running mask and colour averages
    crf: int = 18
    preset: str = "veryfast"
    batch: int = 8  # frames whose faces go through the model together
    threshold: float = SAME_PERSON  # largest embedding distance for a face to count as --from
    detector: str = "hog"
    detect_every: int = 5
    detect_size: int = 640
    watermark: bool = True
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        self.input, self.model, self.output = Path(self.input), Path(self.model), Path(self.output)
        self.alignments = Path(self.alignments) if self.alignments else None
        if self.mask not in (*MASKS, "learned"):
            raise DualfaceError(f"--mask must be one of {', '.join((*MASKS, 'learned'))}, not {self.mask!r}")
        if self.color not in COLOR_TRANSFERS:
            raise DualfaceError(f"--color must be one of {', '.join(COLOR_TRANSFERS)}, not {self.color!r}")
        if self.blend not in BLENDS:
            raise DualfaceError(f"--blend must be one of {', '.join(BLENDS)}, not {self.blend!r}")
        if not -50 < self.erode < 50 or not 0 <= self.feather < 50:
            raise DualfaceError("--erode must be within (-50, 50) and --feather within [0, 50) percent")
        if not 0 <= self.crf <= 51:
            raise DualfaceError(f"--crf must be between 0 and 51, not {self.crf}")
        if not 0 < self.smooth_weight <= 1:
            raise DualfaceError("--smooth-weight must be in (0, 1]")
        if not 1 <= self.batch <= MAX_BATCH:
            raise DualfaceError(f"--batch must be between 1 and {MAX_BATCH}, not {self.batch}")
        if self.detect_every < 1 or self.detect_size < 80:
            raise DualfaceError("--detect-every must be at least 1 and --detect-size at least 80")
        if not 0 < self.threshold < math.inf:
            raise DualfaceError(f"--threshold must be a positive number, not {self.threshold}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise DualfaceError(f"--device {self.device}: this torch build or machine has no CUDA GPU")


@dataclass
class ConvertSummary:
    output: Path
    frames: int = 0
    frames_swapped: int = 0  # frames with at least one face swapped
    faces_swapped: int = 0
    faces_skipped: int = 0  # found but not --from's identity
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # seconds per stage

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def frames_without_swap(self) -> int:
        return self.frames - self.frames_swapped


@dataclass
class Face:
    """A face to swap on one frame."""

    track: int
    landmarks: Landmarks  # source pixels
    matrix: Matrix  # source pixels -> model crop pixels
    crop: np.ndarray  # (S, S, 3) uint8: the model's input
    swapped: np.ndarray | None = None  # (S, S, 3) float32 in [0, 1]: the decoder's drawing
    learned_mask: np.ndarray | None = None  # (S, S) float32, with the model's mask head


# ---------------------------------------------------------------------------------------------------------
# finding the faces


def _tracked_faces(source: Source, cfg: ConvertConfig, fps: float, embed: bool) -> Iterator[tuple]:
    """(index, frame, [(track id, landmarks, embedding)]) for every frame, from the extraction tracker."""
    tracker = FaceTracker(
        TrackerConfig(
            detector=cfg.detector,
            detect_every=cfg.detect_every,
            detect_size=cfg.detect_size,
            still=source.kind == "images",
            smooth=cfg.smooth,
            embed_every=100 if embed else 0,
        ),
        fps=fps,
    )
    for index, frame in prefetch(read_frames(source)):
        tracks = tracker.update(frame, index)
        yield index, frame, [(t.id, t.smoothed, t.embedding) for t in tracks]


def _aligned_faces(source: Source, path: Path) -> Iterator[tuple]:
    """The same, from an alignments file that `dualface extract` wrote for this input."""
    alignments = load_alignments(path)
    if Path(alignments["source"]["path"]).resolve() != source.path.resolve():
        raise DualfaceError(f"{path} holds the faces of {alignments['source']['path']}, not of {source.path}")
    if not alignments.get("complete") or alignments["settings"].get("every", 1) != 1:
        raise DualfaceError(
            f"{path} does not cover every frame (interrupted, or extracted with --every); convert without it"
        )
    by_index = {entry["index"]: entry["faces"] for entry in alignments["frames"]}
    for index, frame in prefetch(read_frames(source)):
        faces = [
            (f.get("track", f["face"]), np.array(f["landmarks"], np.float32), f.get("embedding"))
            for f in by_index.get(index, [])
        ]
        yield index, frame, faces


# ---------------------------------------------------------------------------------------------------------
# swapping and pasting


def model_input(frame: Frame, landmarks: Landmarks, model: Autoencoder) -> tuple[Matrix, np.ndarray]:
    """The alignment matrix and the (S, S, 3) crop the model takes, cut as training's faces were: an
    aligned crop at four times the size, scaled down."""
    cfg = model.config
    big = 4 * cfg.size
    matrix = align_matrix(landmarks, big, cfg.coverage, cfg.centering)
    crop = cv2.warpAffine(frame, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    crop = cv2.resize(crop, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
    # cv2.resize maps pixel centres, x -> (x + 0.5) / 4 - 0.5: the same map, as an affine.
    shrink = np.array([[0.25, 0, -0.375], [0, 0.25, -0.375]], np.float32)
    return compose(shrink, matrix), crop


def _scale(factor: float) -> np.ndarray:
    return np.array([[factor, 0, 0], [0, factor, 0]], np.float32)


@torch.no_grad()
def swap(model: Autoencoder, faces: list[Face], identity: str, device: str) -> None:
    """Draw every face as `identity`, in one batch."""
    if not faces:
        return
    x = torch.from_numpy(np.stack([f.crop for f in faces])).to(device).permute(0, 3, 1, 2).float() / 255
    out = model({identity: x})[identity]
    rgb = out.rgb.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    masks = out.mask[:, 0].cpu().numpy() if out.mask is not None else [None] * len(faces)
    for face, drawn, mask in zip(faces, rgb, masks, strict=True):
        face.swapped, face.learned_mask = drawn, mask


@dataclass
class TrackState:
    """What temporal smoothing carries from one frame to the next, per tracked face."""

    mask: np.ndarray | None = None
    stats: tuple[np.ndarray, np.ndarray] | None = None  # colour statistics of (source, swapped)


def face_mask(face: Face, cfg: ConvertConfig, model_size: int) -> np.ndarray:
    """The blend mask in MASK_SIZE crop pixels (float32 in [0, 1]), eroded and feathered."""
    if cfg.mask == "learned":
        if face.learned_mask is None:
            raise DualfaceError("--mask learned needs a model trained with a mask head (the hd preset)")
        mask = cv2.resize(face.learned_mask, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_LINEAR)
        mask = (mask > 0.5).astype(np.float32)
    else:
        points = transform_points(face.landmarks, face.matrix) * (MASK_SIZE / model_size)
        mask = MASKS[cfg.mask](points, MASK_SIZE)
    # The extended hull reaches past the crop's top: close the mask there, so the feather runs along
    # the crop's edge too instead of leaving a hard line.
    mask[[0, -1], :] = 0
    mask[:, [0, -1]] = 0
    if cfg.erode:
        radius = max(1, round(abs(cfg.erode) / 100 * MASK_SIZE))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = (cv2.erode if cfg.erode > 0 else cv2.dilate)(mask, kernel)
    if cfg.feather:
        # Feather inward, so the soft edge never reaches past the hull onto the background.
        radius = max(1, round(cfg.feather / 100 * MASK_SIZE))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (radius + 1, radius + 1))
        mask = cv2.GaussianBlur(cv2.erode(mask, kernel), (0, 0), radius / 2)
    return mask


def recolor(face: Face, mask: np.ndarray, cfg: ConvertConfig, state: TrackState) -> np.ndarray:
    """The swapped face with the source face's colour (statistics averaged over frames when smoothing)."""
    method = COLOR_TRANSFERS[cfg.color]
    assert face.swapped is not None
    if method is None:
        return face.swapped
    size = face.swapped.shape[0]
    small = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    source = face.crop.astype(np.float32) / 255
    stats = (method.stats(source, small), method.stats(face.swapped, small))
    if cfg.smooth and state.stats is not None:
        w = cfg.smooth_weight
        stats = (w * stats[0] + (1 - w) * state.stats[0], w * stats[1] + (1 - w) * state.stats[1])
    state.stats = stats
    return method.apply(face.swapped, stats[1], stats[0])


def paste(frame: Frame, face: Face, drawn: np.ndarray, mask: np.ndarray, cfg: ConvertConfig) -> None:
    """Warp the drawn face and its mask back into the frame (in place) and blend them there."""
    size = drawn.shape[0]
    to_frame = invert(face.matrix)
    corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float32), to_frame)
    height, width = frame.shape[:2]
    left, top = np.floor(corners.min(0)).astype(int).clip(0, [width, height])
    right, bottom = np.ceil(corners.max(0)).astype(int).clip(0, [width, height])
    if right - left < 2 or bottom - top < 2:
        return
    # Warp only into the face's box: a whole 720p frame per face would cost more than the model.
    shift = np.array([[1, 0, -left], [0, 1, -top]], np.float32)
    to_box = compose(shift, to_frame)
    box = (int(right - left), int(bottom - top))
    face_rgb = cv2.warpAffine(drawn, to_box, box, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    mask_to_box = compose(to_box, _scale(size / MASK_SIZE))
    alpha = cv2.warpAffine(mask, mask_to_box, box, flags=cv2.INTER_LINEAR)[..., None]
    region = frame[top:bottom, left:right]
    if cfg.blend == "poisson":
        _poisson(frame, region, face_rgb, alpha, (left, top))
        return
    blended = region.astype(np.float32) * (1 - alpha) + np.clip(face_rgb, 0, 1) * 255 * alpha
    region[:] = blended.round().astype(np.uint8)


def _poisson(frame: Frame, region: np.ndarray, face_rgb: np.ndarray, alpha: np.ndarray, at: tuple[int, int]) -> None:
    binary = (alpha[..., 0] > 0.5).astype(np.uint8) * 255
    binary[[0, -1], :] = 0  # seamlessClone needs the mask off the patch's border
    binary[:, [0, -1]] = 0
    ys, xs = np.nonzero(binary)
    if len(xs) < 16:
        return
    patch = (np.clip(face_rgb, 0, 1) * 255).round().astype(np.uint8)
    centre = (at[0] + (xs.min() + xs.max() + 1) // 2, at[1] + (ys.min() + ys.max() + 1) // 2)
    try:
        frame[:] = cv2.seamlessClone(patch, frame, binary, centre, cv2.NORMAL_CLONE)
    except cv2.error:  # a face at the frame's edge: fall back to the feathered paste
        region[:] = (region * (1 - alpha) + patch * alpha).round().astype(np.uint8)


def composite(frame: Frame, faces: list[Face], cfg: ConvertConfig, model_size: int, states: dict) -> Frame:
    """The frame with every face swapped in."""
    # A track that is not on this frame has ended (the tracker never revives one): forget its state.
    for track in set(states) - {face.track for face in faces}:
        del states[track]
    out = frame.copy()
    for face in faces:
        state = states.setdefault(face.track, TrackState())
        mask = face_mask(face, cfg, model_size)
        if cfg.smooth and state.mask is not None:
            mask = cfg.smooth_weight * mask + (1 - cfg.smooth_weight) * state.mask
        state.mask = mask
        paste(out, face, recolor(face, mask, cfg, state), mask, cfg)
    return out


# ---------------------------------------------------------------------------------------------------------
# the conversion


def _identity_check(model: Autoencoder, cfg: ConvertConfig, meta: dict[str, Any]) -> np.ndarray | None:
    """Validate --to/--from; the --from identity's mean embedding when faces are to be filtered by it."""
    known = model.identities
    for flag, name in (("--to", cfg.to), ("--from", cfg.source)):
        if name is not None and name not in known:
            raise DualfaceError(f"{flag} {name!r}: the model knows {', '.join(known)}")
    if cfg.source is None:
        return None
    if cfg.source == cfg.to:
        raise DualfaceError(f"--from and --to are both {cfg.to!r}: nothing would change")
    embeddings = meta.get("embeddings", {})
    if cfg.source not in embeddings:
        log.warning("the model stores no identity embeddings: --from cannot filter faces, every face is swapped")
        return None
    return np.array(embeddings[cfg.source], np.float32)


def _is_source(embedding: Any, source: np.ndarray | None, others: list[np.ndarray], threshold: float) -> bool:
    if source is None:
        return True
    if embedding is None:
        return False
    mine = distance(np.asarray(embedding, np.float32), source)
    return mine <= threshold and all(mine < distance(np.asarray(embedding, np.float32), o) for o in others)


def convert(cfg: ConvertConfig) -> ConvertSummary:
    """Swap faces in `cfg.input` and write the result to `cfg.output`; raises DualfaceError on bad input."""
    start = time.perf_counter()
    if not cfg.input.exists():
        raise DualfaceError(f"{cfg.input}: no such file or folder")
    if cfg.output.resolve() == cfg.input.resolve():
        raise DualfaceError(f"{cfg.output}: the output must not be the input")
    sources, problems = expand_inputs([cfg.input])
    if problems:
        raise DualfaceError(problems[0][1])
    if len(sources) != 1:
        raise DualfaceError(f"{cfg.input}: convert takes one video, one image or one folder of images at a time")
    source = sources[0]
    model, meta = _load(cfg)
    source_embedding = _identity_check(model, cfg, meta)
    others = [np.array(v, np.float32) for k, v in meta.get("embeddings", {}).items() if k != cfg.source]

    images_out = source.kind == "images"
    if images_out:
        single = cfg.input.is_file()
        if single and cfg.output.suffix.lower() not in IMAGE_OUTPUTS:
            raise DualfaceError(f"{cfg.output}: an image converts to a .png or .jpg file")
        ensure_writable_dir(cfg.output.parent if single else cfg.output)
        if not single and any(f.resolve().parent == cfg.output.resolve() for f in source.files):
            raise DualfaceError(f"{cfg.output}: the output folder must not be the input folder")
        stems = [f.stem for f in source.files]
        if len(set(stems)) < len(stems):
            raise DualfaceError(
                f"{cfg.input}: two images share a name (e.g. a.jpg and a.png); their outputs would clash"
            )
        fps, total = 25.0, len(source.files)
    else:
        ensure_writable_dir(cfg.output.parent)
        info = probe_video(source.path)
        fps, total = info.fps, info.frame_count

    summary = ConvertSummary(cfg.output)
    if cfg.alignments:
        frames = _aligned_faces(source, cfg.alignments)
    else:
        frames = _tracked_faces(source, cfg, fps, embed=source_embedding is not None)
    bar = tqdm(total=total or None, unit="frame", desc=f"converting {source.name}", disable=not cfg.progress)

    def results(write_frame) -> None:
        for index, out in _converted(frames, model, cfg, source_embedding, others, summary):
            t = time.perf_counter()
            write_frame(index, out)
            summary.timings["encode"] += time.perf_counter() - t
            summary.frames += 1
            bar.update(1)
            bar.set_postfix(swapped=summary.frames_swapped, refresh=False)

    try:
        if images_out:
            # Written as they come (a folder of photos need not fit in memory) under hidden names, and given
            # their real names only once the run has found faces.
            written: list[tuple[Path, Path]] = []

            def keep(index: int, out: Frame) -> None:
                path = _image_path(cfg, source, index)
                hidden = path.with_name(f".{path.stem}.dualface-partial{path.suffix}")
                write_image(hidden, out)
                written.append((hidden, path))

            try:
                results(keep)
                _check_swapped(summary, source)
                for hidden, path in written:
                    hidden.replace(path)
            finally:
                for hidden, _ in written:
                    hidden.unlink(missing_ok=True)
        else:
            with video_writer(cfg.output, source.path, cfg.crf, cfg.preset) as write:
                results(lambda index, out: write(out))
                _check_swapped(summary, source)  # raising here discards the temporary output
    except DamagedMediaError as error:
        raise DualfaceError(f"{error}; nothing was written") from None
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _load(cfg: ConvertConfig) -> tuple[Autoencoder, dict[str, Any]]:
    from dualface.checkpoint import best_or_latest, load_checkpoint, model_from

    if not cfg.model.is_dir():
        raise DualfaceError(f"{cfg.model}: no such model folder")
    checkpoint = load_checkpoint(best_or_latest(cfg.model))
    return model_from(checkpoint, cfg.device), checkpoint.meta


def _check_swapped(summary: ConvertSummary, source: Source) -> None:
    if summary.faces_swapped == 0:
        what = "of the --from identity " if summary.faces_skipped else ""
        raise DualfaceError(f"{source.path}: no face {what}found in {summary.frames} frame(s); nothing was written")


def _image_path(cfg: ConvertConfig, source: Source, index: int) -> Path:
    if cfg.input.is_file():
        return cfg.output
    return cfg.output / f"{source.files[index].stem}.png"


def _converted(frames, model, cfg, source_embedding, others, summary) -> Iterator[tuple[int, Frame]]:
    """(index, converted frame) in order: frames are held until `cfg.batch` of them go through the model."""
    states: dict[int, TrackState] = {}
    pending: list[tuple[int, Frame, list[Face]]] = []
    timings = summary.timings
    frames = iter(frames)
    while True:
        t = time.perf_counter()
        item = next(frames, None)
        timings["decode+track"] += time.perf_counter() - t
        if item is not None:
            index, frame, found = item
            t = time.perf_counter()
            faces = []
            for track, landmarks, embedding in found:
                if not _is_source(embedding, source_embedding, others, cfg.threshold):
                    summary.faces_skipped += 1
                    continue
                matrix, crop = model_input(frame, landmarks, model)
                faces.append(Face(track, landmarks, matrix, crop))
            pending.append((index, frame, faces))
            timings["crop"] += time.perf_counter() - t
        if pending and (item is None or len(pending) >= cfg.batch):
            t = time.perf_counter()
            swap(model, [f for _, _, faces in pending for f in faces], cfg.to, cfg.device)
            timings["model"] += time.perf_counter() - t
            for index, frame, faces in pending:
                t = time.perf_counter()
                out = composite(frame, faces, cfg, model.config.size, states)
                timings["blend"] += time.perf_counter() - t
                if cfg.watermark:
                    t = time.perf_counter()
                    out = embed_watermark(out)
                    timings["watermark"] += time.perf_counter() - t
                if faces:
                    summary.frames_swapped += 1
                    summary.faces_swapped += len(faces)
                yield index, out
            pending.clear()
        if item is None:
            return
