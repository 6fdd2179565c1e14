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
from 0.35 to 0.55 on average (README, "Recentring"; bench/results/quality_*_recentre*.json).

A video's mean is estimated from few faces badly (one photo is its own mean: recentring it would draw the
target's average face), so the estimate leans on the source's training means, which count as
`PRIOR_FACES` faces.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dualface.data import center_crop, load_face_set
from dualface.model import Autoencoder, as_input
from dualface.pose import head_pose

log = logging.getLogger(__name__)

SAMPLE_FRAMES = 64  # frames spread over a video whose faces estimate its mean code
PRIOR_FACES = 16  # how many faces the source identity's training mean counts as, beside the video's own
STORED_FACES = 256  # training faces per identity whose mean code the checkpoint stores


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


def code_faces(faces: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to STORED_FACES of a face set's faces (work crops and their landmarks), spread over it, as model
    crops and their `crop_poses`: what `code_stats` reads for one identity."""
    chosen = np.linspace(0, len(faces) - 1, min(STORED_FACES, len(faces))).round().astype(int)
    crops, points = center_crop(faces[chosen], landmarks[chosen], size)
    return crops, crop_poses(points, size)


def code_stats(model: Autoencoder, faces: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """What a checkpoint stores as meta["codes"], from each identity's (crops, their `crop_poses`): its
    mean code and mean head pose, and how codes move with pose within a person (least squares, pose (3,) ->
    code (latent,)), which keeps a video's own mean pose when its mean code is replaced."""
    if model.config.liae or not faces:
        return {}
    means, poses, moved, turned = {}, {}, [], []
    for name, (crops, angles) in faces.items():
        z = codes(model, crops)
        means[name], poses[name] = z.mean(0), angles.mean(0)
        moved.append(z - means[name])
        turned.append(angles - poses[name])
    p, z = np.concatenate(turned), np.concatenate(moved)
    pose_map = np.linalg.solve(p.T @ p + 1e-3 * len(p) * np.eye(3), p.T @ z)  # (3, latent)

    def rounded(a: np.ndarray) -> list:
        return np.round(a, 5).tolist()

    return {
        "means": {k: rounded(v) for k, v in means.items()},
        "poses": {k: rounded(v) for k, v in poses.items()},
        "pose_map": rounded(pose_map),
    }


@dataclass
class CodeStats:
    means: dict[str, np.ndarray]  # identity -> (latent,) mean code of its training faces
    poses: dict[str, np.ndarray]  # identity -> (3,) their mean (yaw, pitch, roll) in the model's crop
    pose_map: np.ndarray  # (3, latent): a code's move per degree of pose, within a person


def stored_stats(model: Autoencoder, meta: dict[str, Any]) -> CodeStats | None:
    """The checkpoint's code statistics; for a model saved before it stored them, computed from its training
    faces where their folders (meta["faces"]) are still there; None where neither is."""
    stats = meta.get("codes")
    if not stats:
        found = {}
        for name, folder in meta.get("faces", {}).items():
            if Path(folder).is_dir():
                faces = load_face_set(Path(folder), model.config, name, STORED_FACES)
                found[name] = code_faces(faces.faces, faces.landmarks, model.config.size)
        if len(found) < len(model.identities):
            return None
        log.info("the model stores no code statistics (saved by an older dualface): computed from its faces")
        stats = code_stats(model, found)
    if not stats:
        return None
    return CodeStats(
        {k: np.array(v, np.float32) for k, v in stats["means"].items()},
        {k: np.array(v, np.float32) for k, v in stats["poses"].items()},
        np.array(stats["pose_map"], np.float32),
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
    others = [k for k in stats.means if k != target]
    names = [source] if source in stats.means else others
    code = np.mean([stats.means[k] for k in names], axis=0)
    pose = np.mean([stats.poses[k] for k in names], axis=0)
    video = (faces * video + PRIOR_FACES * code) / (faces + PRIOR_FACES)
    video_pose = (faces * video_pose + PRIOR_FACES * pose) / (faces + PRIOR_FACES)
    aim = code + toward_target * (stats.means[target] - code)
    aim_pose = pose + toward_target * (stats.poses[target] - pose)
    return (aim + (video_pose - aim_pose) @ stats.pose_map - video).astype(np.float32)


def sample_frames(total: int) -> set[int] | None:
    """Indices of up to SAMPLE_FRAMES frames spread over `total` (None: the count is unknown, take the first)."""
    if total <= 0:
        return None
    return set(np.linspace(0, total - 1, min(total, SAMPLE_FRAMES)).round().astype(int).tolist())
