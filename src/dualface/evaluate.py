"""Honest numbers for a swap. So far: does the swapped face follow the source's mouth, and does it flicker?

A decoder that draws the target's average face for every input passes a glance at a still preview but
fails this: the mouth opening measured on the swapped faces (68 dlib landmarks) must move with the
source's over many frames (Pearson r).
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dualface.align import box_from_landmarks
from dualface.data import center_crop, load_face
from dualface.landmarks import mouth_opening, predict_landmarks
from dualface.model import Autoencoder

MEASURE_SIZE = 256  # faces are upscaled to this before landmarks are found on them


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


def flicker(frames: list[np.ndarray], regions: list[np.ndarray | None]) -> float:
    """Mean absolute change from one frame to the next inside the face (the union of the two frames'
    regions), averaged over frame pairs that both have a face. Compare outputs with their source: the
    ratio output / source is what the swap adds (1.0: no more shimmer than the footage itself)."""
    changes = []
    for t in range(1, len(frames)):
        if regions[t] is None or regions[t - 1] is None:
            continue
        inside = regions[t] | regions[t - 1]
        diff = np.abs(frames[t].astype(np.int16) - frames[t - 1].astype(np.int16))
        changes.append(float(diff[inside].mean()))
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
