"""Stage 3, conversion: swap the faces of a video (or of images) and write the result with its sound.

Per frame: find the faces exactly as extraction does (the same tracker, or an alignments file), cut each
to the model's crop, draw it with the target identity's decoder (frames are batched through the model),
match its colour to the source face, and paste it back through the inverse alignment with a feathered
mask. Temporal smoothing, on by default, works at three places where a swap shimmers: the landmarks that
place the face (the 1-euro filter of extraction), the mask, and the colour statistics (both averaged
over the frames before, in the face's own aligned coordinates, so head motion doesn't smear them).
Decoding, finding the faces, the model, compositing and encoding overlap in threads (`_converted`).
Before that, faces from frames spread over the input set the code shift that recentres it (`recentre`),
and with --morph the one warp that moves the drawn faces toward the input's proportions (`morph`).
"""

import itertools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dualface.align import transform_points
from dualface.allocator import keep_freed_memory
from dualface.composite import Face, TrackState, composite, model_input
from dualface.config import ConvertConfig
from dualface.errors import DamagedMediaError, DualfaceError
from dualface.faces import recorded, tracked
from dualface.files import ensure_writable_dir
from dualface.identity import distance
from dualface.model import Autoencoder, draw, to_channels_last
from dualface.morph import Morph
from dualface.morph import drawn_landmarks as morph_landmarks
from dualface.precision import pick_device, pick_dtype, wants_channels_last
from dualface.prefetch import prefetch
from dualface.recentre import (
    SAMPLE_FRAMES,
    CodeMove,
    CodeStats,
    code_shift,
    codes,
    crop_poses,
    mouth_gain,
    mouths,
    sample_frames,
    stored_stats,
    video_mean,
)
from dualface.threads import ThreadPolicy
from dualface.track import TrackerConfig
from dualface.types import Frame
from dualface.video import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Source,
    expand_inputs,
    first_of,
    probe_video,
    read_frames,
    read_image,
)
from dualface.watermark import embed_watermark
from dualface.writer import IMAGE_OUTPUTS, VIDEO_OUTPUTS, video_writer, write_image

log = logging.getLogger(__name__)

MORPH_APART = 0.1  # drawn landmarks further from the input's than this share of the crop: no face was drawn


@dataclass
class ConvertSummary:
    output: Path
    frames: int = 0
    frames_swapped: int = 0  # frames with at least one face swapped
    faces_swapped: int = 0
    faces_skipped: int = 0  # found but not --from's identity
    shift: float = 0.0  # the length of the recentring shift (0: none)
    mouth_gain: float = 1.0  # how far the codes were stretched along the mouth direction (`recentre.mouth_gain`)
    morph: float = 0.0  # how far (crop px, on average) --morph moved the drawn landmarks (0: not morphed)
    seconds: float = 0.0
    checkpoint: Path | None = None  # the checkpoint file that drew the faces
    step: int = 0  # its training step
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # seconds per stage

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def frames_without_swap(self) -> int:
        return self.frames - self.frames_swapped


def swap(
    model: Autoencoder,
    faces: list[Face],
    identity: str,
    device: str,
    dtype: torch.dtype,
    move: CodeMove | None = None,
    morph: Morph | None = None,
) -> None:
    """Draw every face as `identity`, in one batch."""
    if not faces:
        return
    rgb, masks = draw(model, np.stack([f.crop for f in faces]), identity, device, len(faces), dtype, move)
    for i, face in enumerate(faces):
        face.swapped, face.learned_mask = rgb[i], None if masks is None else masks[i]
        if morph is not None:
            face.swapped = morph(face.swapped)
            face.learned_mask = None if face.learned_mask is None else morph(face.learned_mask)


# ---------------------------------------------------------------------------------------------------------
# the conversion


def _identity_check(model: Autoencoder, cfg: ConvertConfig, meta: dict[str, Any]) -> np.ndarray | None:
    """Validate --to/--from; the --from identity's mean embedding when faces are to be filtered by it."""
    known = model.identities
    for flag, name in (("--to", cfg.to), ("--from", cfg.from_identity)):
        if name is not None and name not in known:
            raise DualfaceError(f"{flag} {name!r}: the model knows {', '.join(known)}")
    if model.config.liae and cfg.to != model.config.liae:
        # Drawing as another identity takes its own bottleneck, which has only seen that person's faces.
        log.warning("this LIAE model swaps into %s; drawn as %s, faces keep their look", model.config.liae, cfg.to)
    if cfg.from_identity is None:
        return None
    if cfg.from_identity == cfg.to:
        raise DualfaceError(f"--from and --to are both {cfg.to!r}: nothing would change")
    embeddings = meta.get("embeddings", {})
    if cfg.from_identity not in embeddings:
        log.warning("the model stores no identity embeddings: --from cannot filter faces, every face is swapped")
        return None
    return np.array(embeddings[cfg.from_identity], np.float32)


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
    cfg = replace(cfg, device=str(pick_device(cfg.device)))
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
    # The output is checked before the model loads and the input is sampled: a minute's wait for a typo.
    _check_output(cfg, source)
    images_out = source.kind == "images"
    if images_out:
        fps, total = 25.0, len(source.files)
    else:
        info = probe_video(source.path)
        fps, total = info.fps, info.frame_count
    keep_freed_memory()
    summary = ConvertSummary(cfg.output)
    model, meta = _load(cfg, summary)
    source_embedding = _identity_check(model, cfg, meta)
    others = [np.array(v, np.float32) for k, v in meta.get("embeddings", {}).items() if k != cfg.from_identity]

    tracking = TrackerConfig(
        detector=cfg.detector,
        detect_every=cfg.detect_every,
        detect_size=cfg.detect_size,
        still=source.kind == "images",
        smooth=cfg.paste.smooth,
        embed_every=100 if source_embedding is not None else 0,
    )
    stats, move, morph = _code_stats(cfg, model, meta), None, None
    if stats is not None or cfg.morph:
        try:
            sample = _sampled(cfg, model, source, total, tracking, fps, source_embedding, others)
        except DamagedMediaError as error:
            raise DualfaceError(f"{error}; nothing was written") from None
        move = _recentring(cfg, model, stats, sample) if stats is not None else None
        morph = _morphing(cfg, model, sample, move)
        summary.morph = morph.offset if morph is not None else 0.0
    summary.shift = float(np.linalg.norm(move.shift)) if move is not None else 0.0
    summary.mouth_gain = move.mouth_gain if move is not None else 1.0
    unreadable: list[str] = []  # a folder's photos that could not be read
    times: list[float | None] = []  # each video frame's time, which the output keeps (variable frame rates)
    decoded = prefetch(read_frames(source, unreadable, times))
    frames = recorded(decoded, source, cfg.alignments) if cfg.alignments else tracked(decoded, tracking, fps)
    bar = tqdm(total=total or None, unit="frame", desc=f"converting {source.name}", disable=not cfg.progress)

    def results(write_frame) -> None:
        for index, out in _converted(frames, model, cfg, source_embedding, others, summary, move, morph):
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
                write_image(hidden, embed_watermark(out) if cfg.watermark else out)
                written.append((hidden, path))

            try:
                results(keep)
                _check_swapped(summary, source)
                for hidden, path in written:
                    hidden.replace(path)
            finally:
                for hidden, _ in written:
                    hidden.unlink(missing_ok=True)
            if unreadable:  # the others are written; still, not every photo was converted
                raise DualfaceError(f"{first_of(unreadable)}: not converted; the other {len(written)} images were")
        else:
            tags = {"dualface_conversion": json.dumps(recorded_settings(cfg, summary), sort_keys=True)}
            with video_writer(
                cfg.output, source.path, cfg.crf, cfg.x264_preset, tags=tags, mark=cfg.watermark
            ) as write:
                results(lambda index, out: write(out, times[index]))
                _check_swapped(summary, source)  # raising here discards the temporary output
    except DamagedMediaError as error:
        raise DualfaceError(f"{error}; nothing was written") from None
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _check_output(cfg: ConvertConfig, source: Source) -> None:
    """Refuse an output convert cannot write for this input, before any work is done."""
    suffix = cfg.output.suffix.lower()
    if source.kind == "video":
        if suffix not in VIDEO_OUTPUTS:
            raise DualfaceError(f"{cfg.output}: a video converts to a {', '.join(sorted(VIDEO_OUTPUTS))} file")
        ensure_writable_dir(cfg.output.parent)
        return
    if cfg.input.is_file():
        if suffix not in IMAGE_OUTPUTS:
            raise DualfaceError(f"{cfg.output}: an image converts to a .png or .jpg file")
        ensure_writable_dir(cfg.output.parent)
        return
    if suffix in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS and not cfg.output.is_dir():
        raise DualfaceError(f"{cfg.output}: a folder of images converts to a folder; name one without {suffix}")
    ensure_writable_dir(cfg.output)
    if any(f.resolve().parent == cfg.output.resolve() for f in source.files):
        raise DualfaceError(f"{cfg.output}: the output folder must not be the input folder")
    stems = [f.stem for f in source.files]
    if len(set(stems)) < len(stems):
        raise DualfaceError(f"{cfg.input}: two images share a name (e.g. a.jpg and a.png); their outputs would clash")


def _load(cfg: ConvertConfig, summary: ConvertSummary) -> tuple[Autoencoder, dict[str, Any]]:
    from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint

    summary.checkpoint = resolve_checkpoint(cfg.model, cfg.checkpoint)
    checkpoint = load_checkpoint(summary.checkpoint)
    summary.step = checkpoint.step
    log.info("using %s (step %d)", summary.checkpoint, checkpoint.step)
    model = model_from(checkpoint, cfg.device)
    if wants_channels_last(torch.device(cfg.device)):
        model = to_channels_last(model)
    return model, checkpoint.meta


def recorded_settings(cfg: ConvertConfig, summary: ConvertSummary) -> dict[str, Any]:
    """What the output records of its making (container tag `dualface_conversion`): `evaluate` reads the
    checkpoint and the paste settings back, to build its static-swap control the same way."""
    return {
        "checkpoint": str(Path(summary.checkpoint).resolve()),
        "step": summary.step,
        "to": cfg.to,
        "recentre": cfg.recentre,
        "toward_target": cfg.toward_target,
        "mouth_gain": round(summary.mouth_gain, 4),
        "morph": cfg.morph,
        "paste": asdict(cfg.paste),
    }


def _check_swapped(summary: ConvertSummary, source: Source) -> None:
    if summary.faces_swapped == 0:
        what = "of the --from identity " if summary.faces_skipped else ""
        raise DualfaceError(f"{source.path}: no face {what}found in {summary.frames} frame(s); nothing was written")


def _image_path(cfg: ConvertConfig, source: Source, index: int) -> Path:
    if cfg.input.is_file():
        return cfg.output
    return cfg.output / f"{source.files[index].stem}.png"


@dataclass
class Sampled:
    """The faces of up to SAMPLE_FRAMES frames spread over the input, cut to the model's crop: what sets
    the recentring and the morph of the whole input."""

    crops: np.ndarray  # (N, S, S, 3) uint8
    points: np.ndarray  # (N, 68, 2): their landmarks in crop pixels


def _sampled(cfg, model, source, total, tracking, fps, source_embedding, others) -> Sampled:
    picks = sample_frames(total)
    if source.kind == "images":
        frames = _images(source, sorted(picks) if picks is not None else range(len(source.files)))
    else:
        frames = ((i, f) for i, f in read_frames(source) if picks is None or i in picks)
        frames = itertools.islice(frames, len(picks) if picks is not None else SAMPLE_FRAMES)
    still = replace(tracking, still=True, embed_every=1 if source_embedding is not None else 0)
    found = recorded(frames, source, cfg.alignments) if cfg.alignments else tracked(frames, still, fps)
    size, crops, points = model.config.size, [], []
    bar = tqdm(found, total=len(picks) if picks else None, unit="frame", desc="sampling", disable=not cfg.progress)
    for _, frame, faces in bar:
        for f in faces:
            if _is_source(f.embedding, source_embedding, others, cfg.threshold):
                matrix, crop = model_input(frame, f.landmarks, size, model.config.coverage, model.config.centering)
                crops.append(crop)
                points.append(transform_points(f.landmarks, matrix))
    return Sampled(
        np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        np.array(points, np.float32).reshape(-1, 68, 2),
    )


def _code_stats(cfg, model, meta) -> CodeStats | None:
    """The code statistics recentring reads; None when it is off or the model cannot be recentred."""
    if not cfg.recentre:
        return None
    if model.config.liae:
        log.info("an LIAE model's codes are not recentred (recentring needs one shared code)")
        return None
    stats = stored_stats(model, meta)
    if stats is None:
        log.warning("the model stores no code statistics and its training faces are gone: not recentred")
    return stats


def _recentring(cfg, model, stats: CodeStats, sample: Sampled) -> CodeMove:
    """The code move that recentres the input (`recentre`: its shift, and its stretch along the mouth
    direction with --match-mouth), from its sampled faces."""
    size, crops, points = model.config.size, sample.crops, sample.points
    z = codes(model, crops) if len(crops) else np.zeros((0, model.config.latent), np.float32)
    video = z.mean(0) if len(crops) else np.zeros(model.config.latent, np.float32)
    pose = crop_poses(points, size).mean(0) if len(points) else np.zeros(3)
    shift = code_shift(stats, video, pose, len(crops), cfg.to, cfg.from_identity, cfg.toward_target)
    if not cfg.match_mouth or stats.mouth is None:
        if cfg.match_mouth:
            log.info("the model stores no mouth direction and its training faces are gone: the mouth is not matched")
        return CodeMove(shift)
    gain = mouth_gain(stats, z, mouths(points), cfg.to, cfg.from_identity)
    log.info("mouth matched: codes stretched %.2fx along the mouth direction", gain)
    center = video_mean(stats, video, len(crops), cfg.to, cfg.from_identity)
    return CodeMove(shift, center, stats.mouth, gain)


def _morphing(cfg, model, sample: Sampled, move: CodeMove | None) -> Morph | None:
    """The warp that moves the drawn faces' median landmarks --morph of the way to the input's (`morph`),
    read off the sampled faces drawn as the conversion will draw them; None when off or without faces."""
    if not cfg.morph or not len(sample.crops):
        return None
    dtype = pick_dtype(cfg.precision, torch.device(cfg.device))
    rgb, _ = draw(model, sample.crops, cfg.to, cfg.device, 64, dtype, move)
    size = model.config.size
    # Medians: a fit that failed on one drawn face must not bend the warp of every face
    drawn, aim = np.median(morph_landmarks(rgb, sample.points), 0), np.median(sample.points, 0)
    apart = float(np.linalg.norm(aim - drawn, axis=1).mean())
    if apart > MORPH_APART * size:
        log.warning("the drawn faces' landmarks sit %.1f px of %d from the input's: not a face to morph", apart, size)
        return None
    morph = Morph.between(drawn, aim, cfg.morph, size)
    log.info("morph: drawn landmarks moved %.2f px of %d on average", morph.offset, size)
    return morph


def _images(source: Source, chosen: Iterable[int]) -> Iterator[tuple[int, Frame]]:
    """The chosen images of a folder, an unreadable one skipped (the conversion itself says so)."""
    for index in chosen:
        try:
            yield index, read_image(source.files[index])
        except DualfaceError:
            continue


def _converted(
    frames, model, cfg, source_embedding, others, summary, move=None, morph=None
) -> Iterator[tuple[int, Frame]]:
    """(index, converted frame) in order, from stages that overlap in threads: finding and cropping the
    faces (decoding runs ahead of it in a thread of its own), the model on batches of `cfg.batch` frames,
    and compositing; the caller marks and encodes (libx264 threads of its own). Stages hand their
    work on through bounded queues, so the slowest sets the pace while the others use the idle cores, and
    memory holds a few batches of frames at most. `summary.timings` gets each stage's busy seconds: with
    the overlap they add up to more than the wall time."""
    found = prefetch(_found(frames, model, cfg, source_embedding, others, summary), depth=2 * cfg.batch)
    drawn = prefetch(_drawn(found, model, cfg, summary, move, morph), depth=cfg.batch)
    composited = prefetch(_composited(drawn, model.config.size, cfg, summary), depth=cfg.batch)
    try:
        yield from composited
    finally:
        # Outermost first: closing a stage joins its thread, which then no longer runs the stage before it.
        for stage in (composited, drawn, found, frames):
            stage.close()


def _found(frames, model, cfg, source_embedding, others, summary) -> Iterator[tuple[int, Frame, list[Face]]]:
    """Each frame with the faces to swap in it, cut to the model's crop."""
    size, timings = model.config.size, summary.timings
    frames = iter(frames)
    while True:
        t = time.perf_counter()
        item = next(frames, None)
        timings["decode+track"] += time.perf_counter() - t
        if item is None:
            return
        index, frame, found = item
        t = time.perf_counter()
        faces = []
        for f in found:
            if not _is_source(f.embedding, source_embedding, others, cfg.threshold):
                summary.faces_skipped += 1
                continue
            matrix, crop = model_input(frame, f.landmarks, size, model.config.coverage, model.config.centering)
            faces.append(Face(f.track, f.landmarks, matrix, crop))
        timings["crop"] += time.perf_counter() - t
        yield index, frame, faces


def _drawn(found, model, cfg, summary, move=None, morph=None) -> Iterator[tuple[int, Frame, list[Face]]]:
    """The same frames, in order, their faces drawn by the model `cfg.batch` frames at a time."""
    threads = ThreadPolicy(share=0.5)
    device = torch.device(cfg.device)
    if device.type == "cpu":
        threads.start(sample_s=0)  # every stage waits on the first batch: no time to sample the CPU first
    dtype = pick_dtype(cfg.precision, device)
    pending: list[tuple[int, Frame, list[Face]]] = []
    for item in itertools.chain(found, [None]):
        if item is not None:
            pending.append(item)
        if pending and (item is None or len(pending) >= cfg.batch):
            t = time.perf_counter()
            swap(model, [f for _, _, faces in pending for f in faces], cfg.to, cfg.device, dtype, move, morph)
            summary.timings["model"] += time.perf_counter() - t
            yield from pending
            pending = []
            if threads.current:
                threads.update()  # a competitor may have started or stopped


def _composited(drawn, size: int, cfg, summary) -> Iterator[tuple[int, Frame]]:
    """Each frame with its drawn faces pasted in (the writer marks it)."""
    states: dict[int, TrackState] = {}
    timings = summary.timings
    for index, frame, faces in drawn:
        t = time.perf_counter()
        out = composite(frame, faces, cfg.paste, size, states)
        timings["blend"] += time.perf_counter() - t
        if faces:
            summary.frames_swapped += 1
            summary.faces_swapped += len(faces)
        yield index, out
