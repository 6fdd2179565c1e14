"""Honest numbers for a swap: whose face is it, does it follow the source's expression and pose, does it
flicker, and how well does each decoder draw its own person.

A decoder that draws the target's average face for every input passes a glance at a still preview and
scores 100% on identity, but fails the expression measures: the mouth opening measured on the swapped
faces (68 dlib landmarks) must move with the source's over many frames (Pearson r).
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dualface.align import box_from_landmarks
from dualface.data import center_crop, face_files, load_face
from dualface.detect import box_size
from dualface.errors import DualfaceError
from dualface.identity import SAME_PERSON, distance, embed_face
from dualface.landmarks import mouth_opening, predict_landmarks
from dualface.losses import ssim_map
from dualface.masks import hull_in_frame
from dualface.model import Autoencoder
from dualface.pose import eye_opening, head_pose
from dualface.prefetch import prefetch
from dualface.track import FaceTracker, TrackerConfig
from dualface.video import count_frames, probe_video, read_video

MEASURE_SIZE = 256  # faces are upscaled to this before landmarks are found on them
STRIP_FRAMES = 6  # source/output pairs shown in the report


@dataclass
class MouthSync:
    r: float  # Pearson r of mouth opening, source vs swapped
    r_input: float  # the same measurement on the unswapped model input: the ceiling at this resolution
    frames: int
    source: np.ndarray  # (N,) mouth opening of the source faces
    swapped: np.ndarray  # (N,) mouth opening of the swapped faces


def model_inputs(paths: list[Path], model: Autoencoder) -> tuple[np.ndarray, np.ndarray]:
    """Faces cut to the model's crop, (N, S, S, 3) uint8, and their landmarks in that crop, (N, 68, 2)."""
    loaded = [load_face(path, model.config) for path in paths]
    faces = np.stack([work for work, _, _ in loaded])
    points = np.stack([landmarks for _, landmarks, _ in loaded])
    return center_crop(faces, points, model.config.size)


@torch.no_grad()
def swap_faces(model: Autoencoder, faces: np.ndarray, identity: str, batch: int = 64) -> np.ndarray:
    out = []
    for i in range(0, len(faces), batch):
        x = torch.from_numpy(faces[i : i + batch]).permute(0, 3, 1, 2).float() / 255
        y = model({identity: x})[identity].rgb
        out.append((y.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
    return np.concatenate(out)


def measured_mouth(faces: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Mouth opening found by dlib on each face, placed by the box the hint landmarks imply."""
    scale = MEASURE_SIZE / faces.shape[1]
    values = []
    for face, points in zip(faces, hint, strict=True):
        big = np.ascontiguousarray(cv2.resize(face, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_CUBIC))
        values.append(mouth_opening(predict_landmarks(big, box_from_landmarks(points * scale))))
    return np.array(values)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def mouth_sync(model: Autoencoder, face_paths: list[Path], identity: str) -> MouthSync:
    """How well swaps of these faces into `identity` follow the source's mouth."""
    faces, points = model_inputs(face_paths, model)
    source = np.array([mouth_opening(p) for p in points])
    swapped = measured_mouth(swap_faces(model, faces, identity), points)
    on_input = measured_mouth(faces, points)
    return MouthSync(pearson(source, swapped), pearson(source, on_input), len(faces), source, swapped)


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
# a converted video against its source


@dataclass
class FrameScore:
    index: int
    landmark_error: float  # mean distance of the 68 points, output vs source, over the inter-ocular distance
    mouth: tuple[float, float]  # mouth opening (source, output)
    eyes: tuple[float, float]  # eye opening (source, output)
    pose: tuple[list[float], list[float]]  # (yaw, pitch, roll) degrees (source, output)
    to_target: float | None = None  # embedding distance of the output face to the target identity
    to_source: float | None = None  # ... and to the source identity


@dataclass
class VideoEvaluation:
    source: str
    output: str
    target: str  # the identity swapped in
    source_identity: str | None
    frames: int
    frames_scored: int  # frames with a face in the source
    identity_transfer: float | None  # share of embedded frames closer to the target than to the source identity
    mean_to_target: float | None
    mean_to_source: float | None
    landmark_error: float
    mouth_r: float
    eyes_r: float
    pose_error: dict[str, float]  # mean absolute difference, degrees
    flicker_ratio: float  # output / source: 1.0 adds no shimmer
    flicker_source: float  # mean absolute frame-to-frame change inside the face, 0-255 levels
    flicker_output: float
    reconstruction: dict[str, dict[str, float]] = field(default_factory=dict)  # identity -> ssim, psnr
    per_frame: list[FrameScore] = field(default_factory=list)
    changes: list[list[float]] = field(default_factory=list)  # (frame, source change, output change): flicker

    def headline(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("per_frame")
        out.pop("changes")
        return out


def _interocular(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def _refit(frame: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Landmarks found on `frame` from the box `hint` implies, then once more from their own box (as the
    tracker starts a face): the output face is measured where the source face was, not copied from it."""
    frame = np.ascontiguousarray(frame)
    first = predict_landmarks(frame, box_from_landmarks(hint))
    return predict_landmarks(frame, box_from_landmarks(first))


def evaluate_video(
    source: Path,
    output: Path,
    embeddings: dict[str, np.ndarray],
    target: str,
    source_identity: str | None = None,
    embed_frames: int = 100,
    progress: bool = False,
) -> tuple[VideoEvaluation, list[tuple[int, np.ndarray, np.ndarray]]]:
    """Score `output` (a conversion of `source` into `target`) frame by frame.

    Args:
        embeddings: identity -> mean dlib embedding (the model stores them); identity needs the target's.
        embed_frames: at most this many frames are embedded (0.13 s each), spread over the video.

    Returns the evaluation and a few (index, source frame, output frame) for the report's strip.
    """
    info, out_info = probe_video(source), probe_video(output)
    if (info.width, info.height) != (out_info.width, out_info.height):
        raise DualfaceError(f"{output} is {out_info.width}x{out_info.height}, its source {info.width}x{info.height}")
    source_frames, output_frames = count_frames(source), count_frames(output)
    if source_frames != output_frames:
        raise DualfaceError(f"{output} has {output_frames} frames, its source {source_frames}: not a conversion of it")
    tracker = FaceTracker(TrackerConfig(embed_every=0), fps=info.fps)
    step = max(1, info.frame_count // max(embed_frames, 1)) if embed_frames else 0
    target_emb, source_emb = embeddings.get(target), embeddings.get(source_identity) if source_identity else None
    scores: list[FrameScore] = []
    strip_at = set(np.linspace(0, max(info.frame_count - 1, 0), STRIP_FRAMES).round().astype(int).tolist())
    strip: list[tuple[int, np.ndarray, np.ndarray]] = []
    changes = []  # (source, output) frame-to-frame change inside the face, per frame pair: flicker
    previous = None
    pairs = zip(prefetch(read_video(source)), prefetch(read_video(output)), strict=False)
    count = 0
    for (index, frame), (_, out) in tqdm(pairs, total=info.frame_count, unit="frame", disable=not progress):
        count += 1
        tracks = tracker.update(frame, index)
        track = max(tracks, key=lambda t: box_size(t.box), default=None)
        if index in strip_at:
            strip.append((index, frame, out))
        if track is None:
            previous = None
            continue
        src = track.landmarks
        got = _refit(out, src)
        region = hull_in_frame(src, frame.shape)
        if previous is not None:
            inside = region | previous[0]
            changes.append((index, face_change(previous[1], frame, inside), face_change(previous[2], out, inside)))
        previous = (region, frame, out)
        score = FrameScore(
            index,
            float(np.linalg.norm(got - src, axis=1).mean() / max(_interocular(src), 1e-6)),
            (mouth_opening(src), mouth_opening(got)),
            (eye_opening(src), eye_opening(got)),
            (head_pose(src, frame.shape[:2]).tolist(), head_pose(got, frame.shape[:2]).tolist()),
        )
        if step and index % step == 0 and target_emb is not None:
            embedding = embed_face(np.ascontiguousarray(out), got)
            score.to_target = distance(embedding, target_emb)
            score.to_source = distance(embedding, source_emb) if source_emb is not None else None
        scores.append(score)
    if count == 0:
        raise DualfaceError(f"{source}: no frames could be read")
    if len(scores) < 2 or not changes:
        raise DualfaceError(f"{source}: fewer than two frames with a face; nothing to evaluate")
    evaluation = _summarise(source, output, target, source_identity, count, scores, np.array(changes))
    return evaluation, strip


def _summarise(source, output, target, source_identity, count, scores, changes) -> "VideoEvaluation":
    embedded = [s for s in scores if s.to_target is not None]
    compared = [s for s in embedded if s.to_source is not None]
    transfer = float(np.mean([s.to_target < s.to_source for s in compared])) if compared else None
    if transfer is None and embedded:  # no source identity known: count faces within dlib's threshold
        transfer = float(np.mean([s.to_target < SAME_PERSON for s in embedded]))
    mouth = np.array([s.mouth for s in scores])
    eyes = np.array([s.eyes for s in scores])
    poses = np.array([s.pose for s in scores])  # (N, 2, 3)
    pose_error = np.abs(poses[:, 0] - poses[:, 1]).mean(0)
    return VideoEvaluation(
        source=str(source),
        output=str(output),
        target=target,
        source_identity=source_identity,
        frames=count,
        frames_scored=len(scores),
        identity_transfer=transfer,
        mean_to_target=float(np.mean([s.to_target for s in embedded])) if embedded else None,
        mean_to_source=float(np.mean([s.to_source for s in compared])) if compared else None,
        landmark_error=float(np.mean([s.landmark_error for s in scores])),
        mouth_r=pearson(mouth[:, 0], mouth[:, 1]),
        eyes_r=pearson(eyes[:, 0], eyes[:, 1]),
        pose_error={k: float(v) for k, v in zip(("yaw", "pitch", "roll"), pose_error, strict=True)},
        flicker_ratio=float(changes[:, 2].mean() / max(changes[:, 1].mean(), 1e-9)),
        flicker_source=float(changes[:, 1].mean()),
        flicker_output=float(changes[:, 2].mean()),
        per_frame=scores,
        changes=changes.tolist(),
    )


# ---------------------------------------------------------------------------------------------------------
# the model alone: how well each decoder draws its own person


def reconstruction_quality(model: Autoencoder, face_paths: list[Path], identity: str) -> dict[str, float]:
    """SSIM and PSNR of `identity`'s own reconstruction of these faces (use faces it was not trained on)."""
    faces, _ = model_inputs(face_paths, model)
    return _reconstruction(model, faces, identity)


# ---------------------------------------------------------------------------------------------------------
# the stage


@dataclass
class EvaluateConfig:
    """Settings of `dualface evaluate`."""

    source: Path
    output: Path
    model: Path
    to: str
    source_identity: str | None = None  # --from; default: the other identity of a two-identity model
    held_out: dict[str, Path] = field(default_factory=dict)  # identity -> faces it was not trained on
    report: Path | None = None  # folder for report.json and report.html; default beside the output
    embed_frames: int = 100
    progress: bool = True


def evaluate(cfg: EvaluateConfig) -> tuple[VideoEvaluation, Path]:
    """Score a conversion and write its report; returns the evaluation and the HTML report's path."""
    from dualface.checkpoint import best_or_latest, load_checkpoint, model_from
    from dualface.report import write_report

    for path in (cfg.source, cfg.output):
        if not Path(path).is_file():
            raise DualfaceError(f"{path}: no such file")
    if Path(cfg.model).is_dir():
        checkpoint = load_checkpoint(best_or_latest(cfg.model))
        meta = checkpoint.meta
    else:
        raise DualfaceError(f"{cfg.model}: no such model folder")
    known = meta["identities"]
    source_identity = cfg.source_identity
    if source_identity is None and len(known) == 2 and cfg.to in known:
        source_identity = next(n for n in known if n != cfg.to)
    for flag, name in (("--to", cfg.to), ("--from", source_identity)):
        if name is not None and name not in known:
            raise DualfaceError(f"{flag} {name!r}: the model knows {', '.join(known)}")
    embeddings = {k: np.array(v, np.float32) for k, v in meta.get("embeddings", {}).items()}
    if cfg.to not in embeddings:
        raise DualfaceError(f"{cfg.model}: the model stores no identity embeddings (trained by an older dualface)")
    evaluation, strip = evaluate_video(
        Path(cfg.source), Path(cfg.output), embeddings, cfg.to, source_identity, cfg.embed_frames, cfg.progress
    )
    if cfg.held_out:
        model = model_from(checkpoint)
        for name, folder in cfg.held_out.items():
            if name not in known:
                raise DualfaceError(f"--held-out {name}: the model knows {', '.join(known)}")
            files = face_files(folder)
            evaluation.reconstruction[name] = reconstruction_quality(model, files, name)
    folder = Path(cfg.report) if cfg.report else Path(cfg.output).with_name(Path(cfg.output).stem + "-report")
    _, html_path = write_report(evaluation, strip, folder)
    return evaluation, html_path


# ---------------------------------------------------------------------------------------------------------
# during training (`dualface train --eval-every N`)


@torch.no_grad()
def training_eval(
    model: Autoencoder, held_out: dict[str, tuple[np.ndarray, np.ndarray]], embeddings: dict[str, np.ndarray]
) -> dict[str, float]:
    """Reconstruction and identity figures on faces held out of training.

    Args:
        held_out: identity -> (model crops (N, S, S, 3) uint8, their landmarks (N, 68, 2)).
        embeddings: identity -> mean dlib embedding of its training faces.

    Returns `<name>/ssim`, `<name>/psnr` for each identity's own reconstruction, and for each pair
    `<a>-><b>/transfer` (share of a's faces drawn by b's decoder that dlib places closer to b than to a),
    `<a>-><b>/distance` (mean embedding distance of those swaps to b) and `<a>-><b>/mouth_r` (Pearson r of
    the mouth opening of the swaps against a's own: does the swap follow the source?).
    """
    was_training = model.training
    model.eval()
    figures: dict[str, float] = {}
    for name, (faces, points) in held_out.items():
        quality = _reconstruction(model, faces, name)
        figures[f"{name}/ssim"], figures[f"{name}/psnr"] = quality["ssim"], quality["psnr"]
        for other in model.identities:
            if other == name or other not in embeddings or name not in embeddings:
                continue
            swaps = swap_faces(model, faces, other)
            scale = MEASURE_SIZE / swaps.shape[1]
            closer, to_target, mouths = [], [], []
            for swap, hint in zip(swaps, points, strict=True):
                big = np.ascontiguousarray(
                    cv2.resize(swap, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_CUBIC)
                )
                fitted = _refit(big, hint * scale)
                embedding = embed_face(big, fitted)
                d_target, d_source = distance(embedding, embeddings[other]), distance(embedding, embeddings[name])
                closer.append(d_target < d_source)
                to_target.append(d_target)
                mouths.append((mouth_opening(hint), mouth_opening(fitted)))
            figures[f"{name}->{other}/transfer"] = float(np.mean(closer))
            figures[f"{name}->{other}/distance"] = float(np.mean(to_target))
            mouths = np.array(mouths)
            figures[f"{name}->{other}/mouth_r"] = pearson(mouths[:, 0], mouths[:, 1])
    model.train(was_training)
    return figures


def _reconstruction(model: Autoencoder, faces: np.ndarray, identity: str) -> dict[str, float]:
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(swap_faces(model, faces, identity)).permute(0, 3, 1, 2).float() / 255
    mse = ((x - y) ** 2).mean((1, 2, 3)).clamp_min(1e-10)
    return {
        "faces": len(faces),
        "ssim": float(ssim_map(x, y).mean()),
        "psnr": float((10 * torch.log10(1 / mse)).mean()),
    }
