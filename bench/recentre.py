"""Why recentring (`dualface/recentre.py`): a trained model's codes of a recording it never saw still carry
the mouth, and its decoder draws it once the codes are moved to where it was trained.

For a quality run in the cache (`--model RUN`, its last checkpoint), on the model crops (no paste):
1. **The code reads the mouth.** A ridge regression from the dense code to the mouth opening, fitted on
   both people's training faces (600 each), and its r on them and on each held-out recording.
2. **What each shift does to the swap.** Each held-out recording's faces drawn as the other person, with
   their codes as encoded, with the clip's mean code replaced by the target's (the first formula), and
   shifted by `recentre.code_shift` at `toward_target` 0, 0.5 and 1 (the video's mean and pose from all its
   faces here, not 64 frames'). Read by the evaluation's drawn-face measure (dlib): the swap's mouth
   opening's concordance with the source's, and the landmark error (refitted landmarks against the
   source's, over the interocular distance).

    python bench/recentre.py --model quality_lite128_gan_recolor_warpoff06_cov09_lanczos_60m
"""

import argparse
import sys

import numpy as np
import torch

from common import hardware, write_result
from dualface.align import to_mean_face
from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
from dualface.data import center_crop, load_face_set
from dualface.landmarks import mouth_opening
from dualface.metrics import concordance, drawn_landmarks, interocular, refit
from dualface.model import as_uint8
from dualface.recentre import code_shift, codes, crop_poses, stored_stats
from mouth import held_out_faces
from quality import CACHE, DIRECTIONS, faces

TRAINING_FACES = 600


@torch.no_grad()
def drawn(model, z: np.ndarray, identity: str) -> np.ndarray:
    """Dense codes drawn as `identity` (the rest of `Autoencoder.forward` after `Encoder.code`)."""
    enc, cfg = model.encoder, model.config
    x = enc.upscale(enc.from_latent(torch.from_numpy(z.astype(np.float32))).view(-1, cfg.bottleneck_width, 4, 4))
    if model.trunk is not None:
        x = model.trunk.upscale(x)
    return as_uint8(model.decoders[identity](x)[0].clamp(0, 1).permute(0, 2, 3, 1).numpy())


def read(swaps: np.ndarray, points: np.ndarray) -> dict[str, float]:
    pairs = list(zip(swaps, points, strict=True))
    source = np.array([mouth_opening(p) for p in points])
    mouth = np.array([mouth_opening(drawn_landmarks(s, to_mean_face(p))) for s, p in pairs])
    error = [np.linalg.norm(refit(s, p) - p, axis=1).mean() / interocular(p) for s, p in pairs]
    return {"mouth_concordance": round(float(concordance(source, mouth)), 3), "nme": round(float(np.mean(error)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a quality run in the cache")
    args = parser.parse_args()
    run = CACHE / args.model
    checkpoint = load_checkpoint(resolve_checkpoint(run, "last"))
    model = model_from(checkpoint).eval()
    size = model.config.size
    stats = stored_stats(model, checkpoint.meta)
    z_all, opened = [], []
    for name, clips in (("s1", DIRECTIONS["s1-obama"][1]), ("obama", DIRECTIONS["obama-s1"][1])):
        found = load_face_set(faces(CACHE, name, clips), model.config, limit=TRAINING_FACES)
        crops, points = center_crop(found.faces, found.landmarks, size)
        z_all.append(codes(model, crops))
        opened.append([mouth_opening(p) for p in points])
    z, y = np.concatenate(z_all), np.concatenate(opened)
    mean, centred = z.mean(0), z - z.mean(0)
    ridge = 0.1 * (centred**2).sum() / len(z)
    w = np.linalg.solve(centred.T @ centred + ridge * np.eye(z.shape[1]), centred.T @ (y - y.mean()))
    result: dict = {"model": args.model, "ridge_r": {"training": round(float(np.corrcoef(centred @ w, y)[0, 1]), 3)}}
    result["swaps"] = {}
    for direction, (src, _, tgt, _, clip) in DIRECTIONS.items():
        held = load_face_set(held_out_faces(clip), model.config)
        crops, points = center_crop(held.faces, held.landmarks, size)
        zh = codes(model, crops)
        opening = [mouth_opening(p) for p in points]
        result["ridge_r"][clip.stem] = round(float(np.corrcoef((zh - mean) @ w, opening)[0, 1]), 3)
        pose = crop_poses(points, size).mean(0)
        shifts = {"none": np.zeros_like(zh[0]), "target_mean_no_pose": stats.means[tgt] - zh.mean(0)}
        for toward in (0.0, 0.5, 1.0):
            shifts[f"toward_target_{toward:g}"] = code_shift(stats, zh.mean(0), pose, len(zh), tgt, src, toward)
        rows = {name: read(drawn(model, zh + shift, tgt), points) for name, shift in shifts.items()}
        result["swaps"][direction] = rows
        for name, row in rows.items():
            print(f"{direction:9s} {name:22s} mouth concordance {row['mouth_concordance']:.2f}  NME {row['nme']:.3f}")
    print("ridge r (code -> mouth opening):", result["ridge_r"])
    write_result("recentre", {"command": "python bench/recentre.py " + " ".join(sys.argv[1:]), **result,
                              "hardware": hardware()})  # fmt: skip


if __name__ == "__main__":
    main()
