"""Recentring: a recording the model never saw, encoded, sits beside the codes its decoders were trained on,
not among them, and a decoder draws such codes as its person's average face: the mouth barely moves.

The shared encoder does read a new recording's expressions (its codes predict the mouth opening about as
well as the training faces' do: bench/mouth.py), but the recording's light and its person move every code
by about the same offset. `convert` samples faces over the video, and moves every code by the difference of
means: onto the source person's training faces (the recording's light leaves the code), less what the
video's own mean head pose accounts for (a video of a turned head stays turned: `pose_map`), then
`toward_target` of the way on to the target's training faces (the codes its decoder learned to draw).
Each face keeps what it differs from its video by: its pose and expression. The checkpoint stores the
statistics (`code_stats`). Measured on five hours' models, converting into GRID's s1 a recording of
Obama's that no training saw: the identity gap fell from 2.34-2.47 to 1.93-1.99 and the mouth score rose
from 0.35 to 0.55 on average (docs/quality.md, "Recentring"; bench/results/quality_*_recentre*.json).

A video's mean is estimated from few faces badly (one photo is its own mean: recentring it would draw the
target's average face), so the estimate leans on the source's training means, which count as
`PRIOR_FACES` faces.

Recentring moves the mean; the mouth also needs its *range*. A new recording's codes move less per unit of
mouth opening than the training faces' do (measured on Obama's held-out address: 18.5 code units along the
mouth direction per unit of opening, against 25 for his training faces and for s1's: bench/mouth_gain.py),
and a decoder opens its person's mouth by what it learned from its own faces, so s1 drew Obama's mouth at
0.6x its spread. `mouth_gain` stretches each code's distance from the video's mean along the mouth direction (a
within-person regression of codes on mouth opening, stored with the means) by the target's slope over
the video's: the video's opening, read in the target's code units.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dualface.data import center_crop, load_face_set
from dualface.landmarks import mouth_opening
from dualface.model import Autoencoder, as_input
from dualface.pose import head_pose

log = logging.getLogger(__name__)

SAMPLE_FRAMES = 64  # frames spread over a video whose faces estimate its mean code
PRIOR_FACES = 16  # how many faces the source identity's training mean counts as, beside the video's own
STORED_FACES = 256  # training faces per identity whose mean code the checkpoint stores
MOUTH_GAINS = (0.5, 3.0)  # the mouth gain is kept within these: a slope from few faces can be far off
MOUTH_SPREAD = 0.02  # faces whose mouth opening varies less than this (sd) give no slope: no stretch


@torch.no_grad()
def codes(model: Autoencoder, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, latent) dense codes of (N, S, S, 3) uint8 model crops, in fp32 on the model's device."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(crops), batch):
        out.append(model.encoder.code(as_input(crops[i : i + batch], device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.latent), np.float32)


def crop_poses(points: np.ndarray, size: int) -> np.ndarray:
    """(N, 3) head poses (yaw, pitch, roll) of (N, 68, 2) landmarks in a `size` px model crop."""
    return np.array([head_pose(p, (size, size)) for p in points]).reshape(-1, 3)


def mouths(points: np.ndarray) -> np.ndarray:
    """(N,) `mouth_opening` of (N, 68, 2) landmarks."""
    return np.array([mouth_opening(p) for p in points], np.float64)


def code_faces(faces: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to STORED_FACES of a face set's faces (work crops and their landmarks), spread over it, as model
    crops, their `crop_poses` and their `mouths`: what `code_stats` reads for one identity."""
    chosen = np.linspace(0, len(faces) - 1, min(STORED_FACES, len(faces))).round().astype(int)
    crops, points = center_crop(faces[chosen], landmarks[chosen], size)
    return crops, crop_poses(points, size), mouths(points)


def code_stats(model: Autoencoder, faces: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """What a checkpoint stores as meta["codes"], from each identity's `code_faces`: its mean code and mean
    head pose; how codes move with pose within a person (least squares, pose (3,) -> code (latent,)), which
    keeps a video's own mean pose when its mean code is replaced; and the mouth direction (the within-person
    regression of codes on mouth opening, unit length) with each identity's covariance of its codes along
    it with its mouth opening, and its opening's variance: their ratio is its codes' move per unit opening."""
    if model.config.liae or not faces:
        return {}
    means, poses, moved, turned, opened = {}, {}, [], [], []
    for name, (crops, angles, opening) in faces.items():
        z = codes(model, crops)
        means[name], poses[name] = z.mean(0), angles.mean(0)
        moved.append(z - means[name])
        turned.append(angles - poses[name])
        opened.append(opening - opening.mean())
    p, z, m = np.concatenate(turned), np.concatenate(moved), np.concatenate(opened)
    pose_map = np.linalg.solve(p.T @ p + 1e-3 * len(p) * np.eye(3), p.T @ z)  # (3, latent)
    mouth = z.T @ m
    mouth = mouth / max(float(np.linalg.norm(mouth)), 1e-12)
    along = [dz @ mouth for dz in moved]

    def rounded(a: np.ndarray) -> list:
        return np.round(a, 5).tolist()

    return {
        "means": {k: rounded(v) for k, v in means.items()},
        "poses": {k: rounded(v) for k, v in poses.items()},
        "pose_map": rounded(pose_map),
        "mouth": rounded(mouth),
        "mouth_cov": {k: round(float(np.mean(t * o)), 7) for k, t, o in zip(faces, along, opened, strict=True)},
        "mouth_var": {k: round(float(np.mean(o * o)), 7) for k, o in zip(faces, opened, strict=True)},
    }


@dataclass
class CodeStats:
    means: dict[str, np.ndarray]  # identity -> (latent,) mean code of its training faces
    poses: dict[str, np.ndarray]  # identity -> (3,) their mean (yaw, pitch, roll) in the model's crop
    pose_map: np.ndarray  # (3, latent): a code's move per degree of pose, within a person
    mouth: np.ndarray | None = None  # (latent,) unit: the direction codes move in as the mouth opens
    mouth_cov: dict[str, float] = field(default_factory=dict)  # identity -> cov(code along `mouth`, opening)
    mouth_var: dict[str, float] = field(default_factory=dict)  # identity -> var(opening)

    def mouth_slope(self, name: str) -> float:
        """How far `name`'s training codes move along `mouth` per unit of mouth opening."""
        return self.mouth_cov[name] / max(self.mouth_var[name], 1e-12)


def stored_stats(model: Autoencoder, meta: dict[str, Any]) -> CodeStats | None:
    """The checkpoint's code statistics; for a model saved before it stored them, computed from its training
    faces where their folders (meta["faces"]) are still there; None where neither is."""
    stats = meta.get("codes") or {}
    if "mouth" not in stats and not model.config.liae:
        found = {}
        for name, folder in meta.get("faces", {}).items():
            if Path(folder).is_dir():
                faces = load_face_set(Path(folder), model.config, name, STORED_FACES)
                found[name] = code_faces(faces.faces, faces.landmarks, model.config.size)
        if len(found) == len(model.identities):
            log.info("the model stores no mouth statistics (saved by an older dualface): computed from its faces")
            stats = {**code_stats(model, found), **stats}  # what it stored stays as it was
    if not stats:
        return None
    mouth = stats.get("mouth")
    return CodeStats(
        {k: np.array(v, np.float32) for k, v in stats["means"].items()},
        {k: np.array(v, np.float32) for k, v in stats["poses"].items()},
        np.array(stats["pose_map"], np.float32),
        np.array(mouth, np.float32) if mouth is not None else None,
        dict(stats.get("mouth_cov", {})),
        dict(stats.get("mouth_var", {})),
    )


def code_shift(
    stats: CodeStats,
    video: np.ndarray,
    video_pose: np.ndarray,
    faces: int,
    target: str,
    source: str | None = None,
    toward_target: float = 0.5,
) -> np.ndarray:
    """What `draw` adds to each code of a video's faces, drawn as `target`.

    The video's mean code moves onto a point `toward_target` of the way from the source person's training
    mean to the target's (the recording's light leaves the code, and some of its person), plus what the
    video's mean head pose differs from that point's by (`pose_map`: a video of a turned head stays turned,
    and does not take on the target's habitual pose).

    Args:
        video, video_pose: the mean code and mean head pose of `faces` faces sampled from the video. With few
            faces both lean on the source's training means, which count as `PRIOR_FACES` faces.
        source: the identity the video shows (--from); None: the mean of the identities other than `target`.
    """
    names = _sources(stats, target, source)
    code = np.mean([stats.means[k] for k in names], axis=0)
    pose = np.mean([stats.poses[k] for k in names], axis=0)
    video = video_mean(stats, video, faces, target, source)
    video_pose = (faces * video_pose + PRIOR_FACES * pose) / (faces + PRIOR_FACES)
    aim = code + toward_target * (stats.means[target] - code)
    aim_pose = pose + toward_target * (stats.poses[target] - pose)
    return (aim + (video_pose - aim_pose) @ stats.pose_map - video).astype(np.float32)


def _sources(stats: CodeStats, target: str, source: str | None) -> list[str]:
    """The identities a video is taken to show: `source`, or every identity but the target."""
    return [source] if source in stats.means else [k for k in stats.means if k != target]


def video_mean(stats: CodeStats, video: np.ndarray, faces: int, target: str, source: str | None = None) -> np.ndarray:
    """A video's mean code from `faces` faces whose mean is `video`, leaning on the source's training mean."""
    code = np.mean([stats.means[k] for k in _sources(stats, target, source)], axis=0)
    return (faces * video + PRIOR_FACES * code) / (faces + PRIOR_FACES)


def mouth_gain(
    stats: CodeStats, video: np.ndarray, opening: np.ndarray, target: str, source: str | None = None
) -> float:
    """How far to stretch a video's codes along the mouth direction: the target's codes' move per unit of
    mouth opening over the video's (its (N, latent) sampled codes against their (N,) `mouths`), so its
    decoder opens the mouth as far as the video's face does. The video's slope leans on the source's
    training faces as `code_shift`'s mean does; 1.0 where the model stores no mouth direction."""
    if stats.mouth is None or stats.mouth_var.get(target, 0.0) < MOUTH_SPREAD**2:
        return 1.0  # no direction stored, or a target whose faces never open their mouth: no scale to read
    names = _sources(stats, target, source)
    cov = PRIOR_FACES * np.mean([stats.mouth_cov[k] for k in names])
    var = PRIOR_FACES * np.mean([stats.mouth_var[k] for k in names])
    faces = PRIOR_FACES
    if len(video) > 1:
        along, opened = (video - video.mean(0)) @ stats.mouth, opening - opening.mean()
        cov, var, faces = cov + float(along @ opened), var + float(opened @ opened), faces + len(video)
    slope = cov / max(var, 1e-12)
    if slope <= 0 or var / faces < MOUTH_SPREAD**2:
        return 1.0
    return float(np.clip(stats.mouth_slope(target) / slope, *MOUTH_GAINS))


@dataclass
class CodeMove:
    """What `convert` does to each face's dense code before drawing it: stretch its distance from the video's
    mean `center` along `mouth` by `mouth_gain`, then add `shift` (`code_shift`)."""

    shift: np.ndarray  # (latent,)
    center: np.ndarray | None = None  # (latent,)
    mouth: np.ndarray | None = None  # (latent,) unit
    mouth_gain: float = 1.0

    def __call__(self, code: torch.Tensor) -> torch.Tensor:
        """(B, latent) dense codes, moved."""

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float32, device=code.device)

        moved = code.float() + tensor(self.shift)
        if self.mouth is not None and self.center is not None and self.mouth_gain != 1.0:
            mouth = tensor(self.mouth)
            along = (code.float() - tensor(self.center)) @ mouth  # (B,)
            moved = moved + (self.mouth_gain - 1.0) * along[:, None] * mouth
        return moved.to(code.dtype)


def sample_frames(total: int) -> set[int] | None:
    """Indices of up to SAMPLE_FRAMES frames spread over `total` (None: the count is unknown, take the first)."""
    if total <= 0:
        return None
    return set(np.linspace(0, total - 1, min(total, SAMPLE_FRAMES)).round().astype(int).tolist())
