"""Figures on faces a model was not trained on: logged during training (`train --eval-every`), used to pick
`best.safetensors` (`--best-by`), and by `evaluate --held-out` for each decoder's own reconstruction.

Held-out faces come from whole clips that are not trained on: the tail frames of a trained clip are
near-duplicates of its trained frames and flatter the model (an in-training mouth figure of 0.91 on the
last 16 faces of the training set read 0.39 on a truly unseen clip).
"""

from pathlib import Path

import cv2
import numpy as np
import torch

from dualface.align import crop_matrix, invert
from dualface.identity import distance, embed_face
from dualface.landmarks import mouth_opening
from dualface.losses import ssim_map
from dualface.metrics import MEASURE_SIZE, concordance, drawn_landmarks, refit
from dualface.model import Autoencoder, as_uint8, draw
from dualface.pose import eye_opening


def clip_of(face_file: str | Path) -> str:
    """The clip an extracted face came from: extraction names faces `<clip>_<frame>_<face>.png`."""
    return Path(face_file).stem.rsplit("_", 2)[0]


def held_out_clips(files: list[str], share: float = 0.2) -> set[str]:
    """The last clips by name, whole, holding at most `share` of the faces; none when the faces come from
    a single clip (it cannot be split without leaking frames) or the last clip alone is over `share`."""
    clips = [clip_of(f) for f in files]
    names = sorted(set(clips))
    if len(names) < 2:
        return set()
    counts = {name: clips.count(name) for name in names}
    held: set[str] = set()
    total = 0
    for name in reversed(names[1:]):  # never the first: something must be left to train on
        if total + counts[name] > share * len(files):
            break
        held.add(name)
        total += counts[name]
    return held


def _device(model: Autoencoder) -> torch.device:
    return next(model.parameters()).device


def reconstruction(model: Autoencoder, faces: np.ndarray, identity: str) -> dict[str, float]:
    """SSIM and PSNR of `identity`'s decoder drawing these (N, S, S, 3) uint8 faces of its own."""
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(draw(model, faces, identity, _device(model))[0]).permute(0, 3, 1, 2)
    mse = ((x - y) ** 2).mean((1, 2, 3)).clamp_min(1e-10)
    return {
        "faces": len(faces),
        "ssim": float(ssim_map(x, y).mean()),
        "psnr": float((10 * torch.log10(1 / mse)).mean()),
    }


def _expressions(model: Autoencoder, crops: np.ndarray) -> np.ndarray:
    """(N, 2) mouth and eye opening of the faces drawn in these model crops (drawn face only)."""
    cfg = model.config
    to_mean = invert(crop_matrix(cfg.size, cfg.coverage, cfg.centering))
    return np.array([(mouth_opening(p), eye_opening(p)) for p in (drawn_landmarks(c, to_mean) for c in crops)])


OWN_FIGURES = ("ssim", "psnr")  # an identity's held-out faces drawn as itself
PAIR_FIGURES = ("transfer", "distance", "mouth", "eyes")  # drawn as another: `held_out_figures` says what each is


def swap_targets(identities: list[str], name: str, embedded: set[str], liae: str | None) -> list[str]:
    """Whom `name`'s held-out faces are swapped into: every other identity with an embedding, but an LIAE
    model swaps into one identity only (drawn as another, a face keeps its look)."""
    if name not in embedded:
        return []
    return [o for o in identities if o != name and o in embedded and (not liae or o == liae)]


def figure_names(identities: list[str], held: list[str], embedded: set[str], liae: str | None) -> list[str]:
    """The names `held_out_figures` returns, known before any is measured (`--best-by` is checked by them)."""
    names = []
    for name in held:
        names += [f"{name}/{figure}" for figure in OWN_FIGURES]
        for other in swap_targets(identities, name, embedded, liae):
            names += [f"{name}->{other}/{figure}" for figure in PAIR_FIGURES]
    return names


@torch.no_grad()
def held_out_figures(
    model: Autoencoder, held_out: dict[str, tuple[np.ndarray, np.ndarray]], embeddings: dict[str, np.ndarray]
) -> dict[str, float | None]:
    """Reconstruction, identity and expression figures on held-out faces.

    Args:
        held_out: identity -> (model crops (N, S, S, 3) uint8, their landmarks (N, 68, 2)).
        embeddings: identity -> mean dlib embedding of its training faces.

    Returns `<name>/ssim`, `<name>/psnr` for each identity's own reconstruction, and for each pair
    `<a>-><b>/transfer` (share of a's faces drawn by b's decoder that dlib places closer to b than to a),
    `<a>-><b>/distance` (their mean embedding distance to b), `<a>-><b>/mouth` and `<a>-><b>/eyes` (the
    concordance of the swaps' mouth and eye opening with a's own, drawn face only; None when either
    does not vary, which `--best-by` ranks last).
    """
    was_training = model.training
    model.eval()
    figures: dict[str, float | None] = {}
    for name, (faces, points) in held_out.items():
        quality = reconstruction(model, faces, name)
        figures |= {f"{name}/{figure}": quality[figure] for figure in OWN_FIGURES}
        own = _expressions(model, faces)
        for other in swap_targets(model.identities, name, set(embeddings), model.config.liae):
            swaps = as_uint8(draw(model, faces, other, _device(model))[0])
            scale = MEASURE_SIZE / swaps.shape[1]
            closer, to_target = [], []
            for swap, hint in zip(swaps, points, strict=True):
                big = np.ascontiguousarray(
                    cv2.resize(swap, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_CUBIC)
                )
                embedding = embed_face(big, refit(big, hint * scale))
                d_target, d_source = distance(embedding, embeddings[other]), distance(embedding, embeddings[name])
                closer.append(d_target < d_source)
                to_target.append(d_target)
            drawn = _expressions(model, swaps)
            pair = (
                float(np.mean(closer)),
                float(np.mean(to_target)),
                concordance(own[:, 0], drawn[:, 0]),
                concordance(own[:, 1], drawn[:, 1]),
            )
            figures |= {f"{name}->{other}/{figure}": v for figure, v in zip(PAIR_FIGURES, pair, strict=True)}
    model.train(was_training)
    return figures
