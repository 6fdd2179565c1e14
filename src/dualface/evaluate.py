"""`dualface evaluate`: honest numbers for a converted video, each read against its controls.

Per frame with a face in the source, the source frame, the output frame and a **static swap** of the same
frame (the floor: the target decoder's drawing of the first face, pasted through the same compositing
with the settings the conversion recorded) are measured alike (`metrics.observe`); the source against
itself is the ceiling. Identity is dlib's embedding distance of the output to the target's centroid, also
as a gap against the target's own real faces; sharpness is the output face's detail against the target's
own faces cut at the same on-screen size. The measures themselves live in `metrics`.
"""

import heapq
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from tqdm import tqdm

from dualface.align import crop_matrix, to_mean_face
from dualface.alignments import face_landmarks, read_face_png
from dualface.composite import Face, composite, model_input
from dualface.config import SAME_PERSON, EvaluateConfig, PasteConfig
from dualface.data import center_crop, face_files, load_face, warn_if_cut_otherwise
from dualface.errors import DualfaceError
from dualface.faces import Found, largest_faces
from dualface.files import ensure_writable_dir
from dualface.identity import distance, embed_face
from dualface.landmarks import mouth_opening
from dualface.masks import hull_in_frame
from dualface.metrics import (
    METRICS,
    FrameScore,
    Observed,
    Score,
    VideoEvaluation,
    agreement,
    aligned_crop,
    detail,
    face_laplacian,
    face_scale,
    observe,
    passes,
    score,
    summarise,
    verdict,
)
from dualface.model import Autoencoder, draw
from dualface.pose import eye_opening
from dualface.prefetch import prefetch
from dualface.real_faces import paste_real_faces
from dualface.video import count_frames, probe_video, read_video

log = logging.getLogger(__name__)

STRIP_FRAMES = 6  # source/output pairs shown in the report
BLURRIEST = 5  # face close-ups of the output's least sharp frames in the report
EYES_STILL = 0.3  # eye opening within this share of its median on every frame: no blink (one reads -50%)
SOURCE_ONLY = {"source_identity"}  # read off the source alone: the real-faces control cannot differ
MIN_FACE_FRAMES = 10  # frames with a face an evaluation needs: agreement over fewer is noise
REFERENCE_FACES = 24  # target faces sampled for the sharpness and identity references
CLOSE_UP = 128
CLOSE_UP_CROP = crop_matrix(CLOSE_UP, 0.85, "face")


def face_change(before: np.ndarray, after: np.ndarray, inside: np.ndarray) -> float:
    """Mean absolute change of the pixels `inside` from one frame to the next, 0-255 levels."""
    return float(np.abs(after.astype(np.int16) - before)[inside].mean())


def flicker(frames: list[np.ndarray], regions: list[np.ndarray | None]) -> float:
    """Mean absolute change from one frame to the next inside the face (the union of the two frames'
    regions), averaged over frame pairs that both have a face. Compare outputs with their source: the
    ratio output / source is what the swap adds (1.0: no more shimmer than the footage itself)."""
    changes = []
    for t in range(1, len(frames)):
        if regions[t] is None or regions[t - 1] is None:
            continue
        changes.append(face_change(frames[t - 1], frames[t], regions[t] | regions[t - 1]))
    if not changes:
        raise ValueError("no two consecutive frames with a face: flicker is undefined")
    return float(np.mean(changes))


def face_color_error(source: list[np.ndarray], output: list[np.ndarray], regions: list[np.ndarray | None]) -> float:
    """Mean CIE76 colour difference (Lab) between the output's face and the source's, region by region:
    how far a swapped face is from the light and skin tone it was pasted into."""
    errors = []
    for src, out, region in zip(source, output, regions, strict=True):
        if region is None:
            continue
        lab = [cv2.cvtColor(f.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[region].mean(0) for f in (src, out)]
        errors.append(float(np.linalg.norm(lab[0] - lab[1])))
    return float(np.mean(errors))


# ---------------------------------------------------------------------------------------------------------
# controls and references


@dataclass
class StaticSwap:
    """The floor: the target decoder's drawing of the first face it is given, pasted on every frame
    through the same compositing as the conversion. The right identity, and a face that never moves."""

    model: Autoencoder
    identity: str
    paste: PasteConfig
    drawn: tuple[np.ndarray, np.ndarray | None] | None = None
    states: dict = field(default_factory=dict)

    def __call__(self, frame: np.ndarray, track: int, landmarks: np.ndarray) -> np.ndarray:
        cfg = self.model.config
        matrix, crop = model_input(frame, landmarks, cfg.size, cfg.coverage, cfg.centering)
        if self.drawn is None:
            rgb, masks = draw(self.model, crop[None], self.identity)
            self.drawn = (rgb[0], None if masks is None else masks[0])
        face = Face(track, landmarks, matrix, crop, *self.drawn)
        return composite(frame, [face], self.paste, cfg.size, self.states)


def static_swap_video(source: Path, static: StaticSwap, output: Path) -> Path:
    """Write the floor control as a video of its own (what `evaluate` compares a swap with), labelled and
    watermarked as synthetic like every output."""
    from dualface.writer import video_writer

    with video_writer(output, source, kind="static face swap (evaluation control)") as write:
        for (_, frame), face in zip(prefetch(read_video(source)), largest_faces(source), strict=False):
            out = frame if face is None else static(frame, face.track, face.landmarks)
            write(out)
    return output


@dataclass
class TargetFaces:
    """The target's own real faces, the references for sharpness and the identity gap."""

    folder: Path
    images: list[np.ndarray]
    to_mean: list[np.ndarray]  # image pixels -> mean-face units, per face
    landmarks: list[np.ndarray]  # in image pixels
    embeddings: list[np.ndarray] | None = None  # dlib's, made on first use

    @classmethod
    def load(cls, folder: Path, most: int = REFERENCE_FACES) -> "TargetFaces":
        files = face_files(folder)
        chosen = [files[i] for i in np.linspace(0, len(files) - 1, min(most, len(files))).round().astype(int)]
        warn_if_cut_otherwise(Path(folder), chosen)  # the references set the sharpness bar
        images, to_mean, points = [], [], []
        for path in chosen:
            image, record = read_face_png(path)
            landmarks = face_landmarks(record)
            images.append(image)
            points.append(landmarks)
            to_mean.append(to_mean_face(landmarks))
        return cls(Path(folder), images, to_mean, points)

    @property
    def scale(self) -> float:
        """These faces' size: image pixels per mean-face unit (median)."""
        return float(np.median([face_scale(p) for p in self.landmarks]))

    def detail(self, pixels_per_unit: float) -> tuple[float, float]:
        """Median sharpness and median noise floor (`metrics.grain`) of these faces cut at the given
        on-screen size."""
        faces = zip(self.images, self.to_mean, strict=True)
        read = np.array([detail(face_laplacian(image, to_mean, pixels_per_unit)) for image, to_mean in faces])
        return float(np.median(read[:, 0])), float(np.median(read[:, 1]))

    def distance_to(self, centroid: np.ndarray) -> float:
        """Mean embedding distance of these faces to `centroid`: how close the person's own faces sit."""
        if self.embeddings is None:  # once: the swap and its real-faces control are read against the same
            faces = zip(self.images, self.landmarks, strict=True)
            self.embeddings = [embed_face(np.ascontiguousarray(i), p) for i, p in faces]
        return float(np.mean([distance(e, centroid) for e in self.embeddings]))


# ---------------------------------------------------------------------------------------------------------
# a converted video against its source


def recorded_conversion(path: Path) -> dict[str, Any]:
    """What `convert` recorded in the output's container tags (checkpoint, step, paste settings)."""
    try:
        with av.open(str(path)) as container:
            # Matroska upper-cases tag names
            text = {k.lower(): v for k, v in container.metadata.items()}.get("dualface_conversion")
    except av.FFmpegError:
        return {}
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}


def evaluate_video(
    source: Path,
    output: Path,
    embeddings: dict[str, np.ndarray],
    target: str,
    source_identity: str | None = None,
    static: StaticSwap | None = None,
    reference: TargetFaces | None = None,
    embed_frames: int = 100,
    progress: bool = False,
    faces: list[Found | None] | None = None,
) -> tuple[VideoEvaluation, list[tuple[int, np.ndarray, np.ndarray]], list[tuple[int, np.ndarray, np.ndarray]]]:
    """Score `output` (a conversion of `source` into `target`) frame by frame, against its controls.

    Args:
        embeddings: identity -> mean dlib embedding (the model stores them); identity needs the target's.
        static: the floor control; without it, scores have no floor and no normalised value.
        reference: the target's own faces; without them, no sharpness ratio and no identity gap.
        embed_frames: at most this many frames are embedded (0.13 s each), spread over the video.
        faces: the source's `largest_faces`, where the caller has found them already.

    Returns the evaluation, a few (index, source frame, output frame) for the report's strip, and
    (index, source close-up, output close-up) of the blurriest output faces.
    """
    info, out_info = probe_video(source), probe_video(output)
    # convert pads an odd side by one replicated row or column (H.264 in yuv420p takes even sides only);
    # the output's frames are cut back to the source's size below, so the pad is never measured
    padded = (info.width + info.width % 2, info.height + info.height % 2)
    if (out_info.width, out_info.height) not in {(info.width, info.height), padded}:
        raise DualfaceError(f"{output} is {out_info.width}x{out_info.height}, its source {info.width}x{info.height}")
    source_frames, output_frames = count_frames(source), count_frames(output)
    if source_frames != output_frames:
        raise DualfaceError(f"{output} has {output_frames} frames, its source {source_frames}: not a conversion of it")
    if faces is None:
        faces = largest_faces(source, progress)
    step = max(1, info.frame_count // max(embed_frames, 1)) if embed_frames else 0
    target_emb, source_emb = embeddings.get(target), embeddings.get(source_identity) if source_identity else None
    strip_at = set(np.linspace(0, max(info.frame_count - 1, 0), STRIP_FRAMES).round().astype(int).tolist())
    strip: list[tuple[int, np.ndarray, np.ndarray]] = []
    blurriest: list[tuple[float, int, np.ndarray, np.ndarray]] = []  # a max-heap on -ratio: the least sharp kept
    observed: list[tuple[Observed, Observed, Observed | None]] = []  # (source, output, static swap)
    scores: list[FrameScore] = []
    scales: list[float] = []
    changes = []  # (source, output) frame-to-frame change inside the face, per frame pair: flicker
    previous = None
    triples = zip(prefetch(read_video(source)), prefetch(read_video(output)), faces, strict=False)
    count = 0
    for (index, frame), (_, out), face in tqdm(triples, total=info.frame_count, unit="frame", disable=not progress):
        count += 1
        out = np.ascontiguousarray(out[: info.height, : info.width])  # convert's even-side pad off
        if index in strip_at:
            strip.append((index, frame, out))
        if face is None:
            previous = None
            continue
        src = face.raw
        region = hull_in_frame(src, frame.shape)
        if previous is not None:
            inside = region | previous[0]
            changes.append((index, face_change(previous[1], frame, inside), face_change(previous[2], out, inside)))
        previous = (region, frame, out)
        cap = reference.scale if reference is not None else None
        seen = (
            observe(frame, src, cap),
            observe(out, src, cap),
            observe(static(frame, face.track, face.landmarks), src, cap) if static else None,
        )
        observed.append(seen)
        scales.append(face_scale(src))
        floor = seen[2]
        score_ = FrameScore(
            index,
            (
                mouth_opening(seen[0].drawn),
                mouth_opening(seen[1].drawn),
                mouth_opening(floor.drawn) if floor else float("nan"),
            ),
            (
                eye_opening(seen[0].drawn),
                eye_opening(seen[1].drawn),
                eye_opening(floor.drawn) if floor else float("nan"),
            ),
            (seen[0].sharpness, seen[1].sharpness),
            METRICS["landmark_error"].per_frame(seen[0], seen[1]),
        )
        if step and index % step == 0 and target_emb is not None:
            embedding = embed_face(np.ascontiguousarray(out), seen[1].fitted)
            score_.to_target = distance(embedding, target_emb)
            score_.to_source = distance(embedding, source_emb) if source_emb is not None else None
            own = embed_face(np.ascontiguousarray(frame), seen[0].fitted)  # who the source shows
            score_.source_to_target = distance(own, target_emb)
            score_.source_to_source = distance(own, source_emb) if source_emb is not None else None
        scores.append(score_)
        ratio = seen[1].sharpness / max(seen[0].sharpness, 1e-6)
        item = (-ratio, index, _close_up(frame, src), _close_up(out, src))
        if len(blurriest) < BLURRIEST:
            heapq.heappush(blurriest, item)
        elif item[0] > blurriest[0][0]:
            heapq.heapreplace(blurriest, item)
    if count == 0:
        raise DualfaceError(f"{source}: no frames could be read")
    if len(scores) < MIN_FACE_FRAMES:
        raise DualfaceError(
            f"{source}: {len(scores)} frame(s) with a face, fewer than the {MIN_FACE_FRAMES} an agreement of "
            "mouth and eyes needs; evaluate a longer clip"
        )
    if not changes:
        raise DualfaceError(f"{source}: no two frames in a row with a face; flicker cannot be measured")
    evaluation = _summarise(
        source,
        output,
        target,
        source_identity,
        count,
        scores,
        observed,
        np.array(changes),
        reference,
        target_emb,
        float(np.median(scales)),
    )
    worst = [(index, a, b) for _, index, a, b in sorted(blurriest, reverse=True)]
    return evaluation, strip, worst


def _close_up(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face, aligned and tight (brows to chin), CLOSE_UP pixels square."""
    return aligned_crop(frame, to_mean_face(landmarks), CLOSE_UP_CROP, CLOSE_UP)


def eyes_still(opening: np.ndarray) -> bool:
    """Whether the source's eyes never blink nor widen (every frame within EYES_STILL of their median):
    then a swap has nothing to follow, and landmark jitter alone is no bar."""
    median = float(np.median(opening)) if len(opening) else 0.0
    return median > 0 and bool(np.all(np.abs(opening - median) < EYES_STILL * median))


def _source_is_not_target(embedded: list[FrameScore]) -> float | None:
    """Share of the embedded source frames that do not already show the target: within dlib's same-person
    threshold of it, and nearer it than the source identity (where one is known). Where the
    source already shows the target (a wrong --to or --from, or a clip of the target), a copy of it would
    pass every other measure: identity and expression alike."""
    if not embedded:
        return None
    target = [
        s.source_to_target < SAME_PERSON and (s.source_to_source is None or s.source_to_target < s.source_to_source)
        for s in embedded
    ]  # a third person, far from both identities, is a source like any other
    return 1.0 - float(np.mean(target))


def _summarise(
    source, output, target, source_identity, count, scores, observed, changes, reference, target_emb, scale
) -> VideoEvaluation:
    swap = [(s, o) for s, o, _ in observed]
    ceiling = [(s, s) for s, _, _ in observed]
    floor = [(s, f) for s, _, f in observed if f is not None]
    results: dict[str, Score] = {}
    for name, metric in METRICS.items():
        if metric.per_frame is None:
            continue
        low = summarise(name, floor) if floor else None
        if floor and metric.summary is agreement:
            # A floor that does not move at all agrees with nothing: 0, not "undefined"; one that moves
            # against the source (-0.7 on three frames) would lower the bar: a static swap's is 0 at best.
            low = max(low, 0.0) if low is not None else 0.0
        results[name] = score(name, summarise(name, swap), low, summarise(name, ceiling))
    results["eyes"].still = eyes_still(np.array([eye_opening(s.drawn) for s, _, _ in observed]))

    embedded = [s for s in scores if s.to_target is not None]
    compared = [s for s in embedded if s.to_source is not None]
    transfer = float(np.mean([s.to_target < s.to_source for s in compared])) if compared else None
    if transfer is None and embedded:  # no source identity known: count faces within dlib's threshold
        transfer = float(np.mean([s.to_target < SAME_PERSON for s in embedded]))
        log.warning("no source identity (--from): identity transfer counts frames within %s of the target", SAME_PERSON)
    mean_to_target = float(np.mean([s.to_target for s in embedded])) if embedded else None
    results["identity_transfer"] = score("identity_transfer", transfer)
    results["source_identity"] = score("source_identity", _source_is_not_target(embedded))
    target_to_itself = gap = None
    if reference is not None and target_emb is not None and mean_to_target is not None:
        target_to_itself = reference.distance_to(target_emb)
        gap = mean_to_target / target_to_itself if target_to_itself > 0 else None
    results["identity_gap"] = score("identity_gap", gap, ceiling=1.0 if gap is not None else None)
    sharp = None
    if reference is not None:
        own, own_grain = reference.detail(min(scale, reference.scale))
        output_sharpness = float(np.median([o.sharpness for _, o in swap]))
        sharp = output_sharpness / own if own > 0 else None
        results["sharpness"] = score("sharpness", sharp, ceiling=1.0)
        output_grain = float(np.median([o.grain for _, o in swap]))
        results["grain"] = score("grain", output_grain / max(own_grain, 1e-3), ceiling=1.0)
    else:
        results["sharpness"] = score("sharpness", None)
        results["grain"] = score("grain", None)
    flicker_ratio = float(changes[:, 2].mean() / max(changes[:, 1].mean(), 1e-9))
    results["flicker_ratio"] = score("flicker_ratio", flicker_ratio, ceiling=1.0)
    results = {name: results[name] for name in METRICS if name in results}  # the table's order
    usable, failed = verdict(results)
    return VideoEvaluation(
        source=str(source),
        output=str(output),
        target=target,
        source_identity=source_identity,
        checkpoint=None,
        step=None,
        frames=count,
        frames_scored=len(scores),
        scores=results,
        usable=usable,
        failed=failed,
        mean_to_target=mean_to_target,
        mean_to_source=float(np.mean([s.to_source for s in compared])) if compared else None,
        target_to_itself=target_to_itself,
        flicker_source=float(changes[:, 1].mean()),
        flicker_output=float(changes[:, 2].mean()),
        reference_faces=str(reference.folder) if reference is not None else None,
        per_frame=scores,
        changes=changes.tolist(),
    )


def reach(
    evaluation: VideoEvaluation,
    cfg: EvaluateConfig,
    model: Autoencoder,
    embeddings: dict[str, np.ndarray],
    source_identity: str | None,
    reference: TargetFaces,
    paste: PasteConfig,
    faces: list[Found | None] | None = None,
) -> None:
    """Score the target's own real faces pasted the same way (`real_faces`) into each score's `reachable`,
    and name the failed measures they fail too (`out_of_reach`). The verdict does not change: a bar the
    target's own faces fail too still fails; the report says so beside it."""
    with tempfile.TemporaryDirectory(prefix="dualface-real-faces-") as scratch:
        video = Path(scratch) / "real-faces.mp4"
        evaluation.real_faces = paste_real_faces(
            Path(cfg.source), reference.folder, video, model.config, paste, cfg.progress, faces
        )
        real, *_ = evaluate_video(
            Path(cfg.source), video, embeddings, cfg.to, source_identity, None, reference, cfg.embed_frames,
            cfg.progress, faces,
        )  # fmt: skip
    for name, s in evaluation.scores.items():
        if name in real.scores and name not in SOURCE_ONLY:
            s.reachable = real.scores[name].value
    evaluation.out_of_reach = [
        name
        for name in evaluation.failed
        if name not in SOURCE_ONLY and passes(name, evaluation.scores[name].reached(name)) is False
    ]


# ---------------------------------------------------------------------------------------------------------
# the model alone: how well each decoder draws its own person


def model_inputs(paths: list[Path], model: Autoencoder) -> tuple[np.ndarray, np.ndarray]:
    """Faces cut to the model's crop, (N, S, S, 3) uint8, and their landmarks in that crop, (N, 68, 2)."""
    loaded = [load_face(path, model.config) for path in paths]
    faces = np.stack([work for work, _, _ in loaded])
    points = np.stack([landmarks for _, landmarks, _ in loaded])
    return center_crop(faces, points, model.config.size)


def reconstruction_quality(model: Autoencoder, face_paths: list[Path], identity: str) -> dict[str, float]:
    """SSIM and PSNR of `identity`'s own reconstruction of these faces (use faces it was not trained on)."""
    from dualface.heldout import reconstruction

    faces, _ = model_inputs(face_paths, model)
    return reconstruction(model, faces, identity)


# ---------------------------------------------------------------------------------------------------------
# the stage


def evaluate(cfg: EvaluateConfig) -> tuple[VideoEvaluation, Path]:
    """Score a conversion and write its report; returns the evaluation and the HTML report's path."""
    from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
    from dualface.report import write_report

    for path in (cfg.source, cfg.output):
        if Path(path).is_dir():
            raise DualfaceError(f"{path}: a folder, not a video file")
        if not Path(path).is_file():
            raise DualfaceError(f"{path}: no such file")
    if not Path(cfg.model).is_dir():
        raise DualfaceError(f"{cfg.model}: no such model folder")
    recorded = recorded_conversion(Path(cfg.output))
    choice = cfg.checkpoint or recorded.get("checkpoint") or "best"
    if cfg.checkpoint is None and recorded.get("checkpoint") and not Path(recorded["checkpoint"]).is_file():
        log.warning("%s: the checkpoint it was made with (%s) is gone; using best", cfg.output, recorded["checkpoint"])
        choice = "best"
    checkpoint_path = resolve_checkpoint(Path(cfg.model), choice)
    checkpoint = load_checkpoint(checkpoint_path)
    if cfg.checkpoint is None and recorded.get("step") not in (None, checkpoint.step):
        log.warning(
            "%s was made by step %s, but %s now holds step %d (training went on): the floor is drawn by it",
            cfg.output, recorded["step"], checkpoint_path, checkpoint.step,
        )  # fmt: skip
    meta = checkpoint.meta
    known = meta["identities"]
    source_identity = cfg.from_identity
    if source_identity is None and len(known) == 2 and cfg.to in known:
        source_identity = next(n for n in known if n != cfg.to)
    for flag, name in (("--to", cfg.to), ("--from", source_identity)):
        if name is not None and name not in known:
            raise DualfaceError(f"{flag} {name!r}: the model knows {', '.join(known)}")
    for name, faces_folder in cfg.held_out.items():
        if name not in known:
            raise DualfaceError(f"--held-out {name}: the model knows {', '.join(known)}")
        face_files(faces_folder)  # a mistyped folder said now, not after the whole evaluation
    if cfg.target_faces is not None and not Path(cfg.target_faces).is_dir():
        raise DualfaceError(f"--target-faces {cfg.target_faces}: no such folder")
    embeddings = {k: np.array(v, np.float32) for k, v in meta.get("embeddings", {}).items()}
    if cfg.to not in embeddings:
        raise DualfaceError(f"{cfg.model}: the model stores no identity embeddings (trained by an older dualface)")
    out = ensure_writable_dir(cfg.report_folder)  # a folder the report cannot go to said now, not after the run
    model = model_from(checkpoint)
    static = StaticSwap(model, cfg.to, PasteConfig.of(recorded.get("paste", {})))
    folder = cfg.target_faces or cfg.held_out.get(cfg.to) or meta.get("faces", {}).get(cfg.to)
    reference = None
    if folder and Path(folder).is_dir():
        reference = TargetFaces.load(Path(folder))
        if (spread := reference.distance_to(embeddings[cfg.to])) > SAME_PERSON:
            raise DualfaceError(
                f"{folder}: these faces are not {cfg.to}'s (they sit {spread:.2f} from the identity the model "
                f"learned; one person's own faces sit within {SAME_PERSON}): give {cfg.to}'s faces"
            )
    else:
        log.warning("no faces of %s to compare with (pass --target-faces): no sharpness ratio, no identity gap", cfg.to)
    faces = largest_faces(Path(cfg.source), cfg.progress)  # once: the swap and the real faces' paste share them
    evaluation, strip, blurriest = evaluate_video(
        Path(cfg.source),
        Path(cfg.output),
        embeddings,
        cfg.to,
        source_identity,
        static,
        reference,
        cfg.embed_frames,
        cfg.progress,
        faces,
    )
    evaluation.checkpoint = str(checkpoint_path)
    evaluation.step = checkpoint.step
    evaluation.paste = recorded.get("paste", {})
    if sharpen := evaluation.paste.get("sharpen"):  # edge contrast the paste added, not detail the model drew
        evaluation.scores["sharpness"].not_credited = f"pasted with --sharpen {sharpen:g}"
        evaluation.usable, evaluation.failed = verdict(evaluation.scores)
    if cfg.real_faces and reference is not None:
        reach(evaluation, cfg, model, embeddings, source_identity, reference, static.paste, faces)
    for name, faces_folder in cfg.held_out.items():
        evaluation.reconstruction[name] = reconstruction_quality(model, face_files(faces_folder), name)
    _, html_path = write_report(evaluation, strip, blurriest, out)
    return evaluation, html_path
