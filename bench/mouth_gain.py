"""Why `convert --match-mouth` stretches a new recording's codes along the mouth direction, and how far.

For a bench/quality.py run's model and each direction's held-out recording (its faces as bench/quality.py
extracted them), on the model crops, before any paste:

1. **Slopes.** Along the direction codes move in as the mouth opens (`recentre.code_stats`: a regression
   within each person of codes on mouth opening), how far they move per unit of opening: each identity's
   training faces, and the held-out recording's. `recentre.mouth_gain` is the target's over the recording's.
2. **What the decoder draws.** The recording's faces, recentred as `convert` recentres them, drawn as the
   target with their codes stretched along the direction by a few gains (1, `mouth_gain`'s, 1.5, 2, 3); the
   drawn crops' landmarks read as `evaluate` reads a drawn face; the drawn opening's spread over the
   source's, and their concordance (what `evaluate`'s mouth score reads, here without the paste).
3. **The eyes, the same way** (eye opening, a direction of its own), which `convert` does not stretch: the
   figures say why.

With --stills WITHOUT WITH (two conversions of the Obama -> s1 held-out clip, without and with the stretch;
the run's own report-obama-s1-60m gives the source's mouth per frame), close-ups at the source's three
widest and two most closed mouths, rows source / without / with, go to docs/matchmouth-obama-s1.png.

    python bench/mouth_gain.py --run quality_lite128_gan_recolor_warpoff06_cov09_recentre_seed2_60m
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import hardware, save_still, write_result
from dualface.align import to_mean_face
from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
from dualface.data import center_crop, load_face_set
from dualface.landmarks import mouth_opening
from dualface.metrics import concordance, drawn_landmarks
from dualface.model import draw
from dualface.pose import eye_opening
from dualface.recentre import MOUTH_GAINS, CodeMove, code_shift, codes, crop_poses, mouth_gain, mouths, stored_stats
from quality import CACHE, DIRECTIONS, ROOT, close_ups

MEASURES = {"mouth": mouth_opening, "eyes": eye_opening}
GAINS = (1.0, 1.5, 2.0, 3.0)
FACES = 300  # training faces per identity read


def faces_of(model, folder: Path, name: str, most: int = FACES):
    found = load_face_set(folder, model.config, name, most)
    crops, points = center_crop(found.faces, found.landmarks, model.config.size)
    return crops, points, codes(model, crops)


def direction(sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The unit direction codes move in as `measure` grows, within each person: {name: (codes, measure)}."""
    z = np.concatenate([c - c.mean(0) for c, _ in sets.values()])
    m = np.concatenate([v - v.mean() for _, v in sets.values()])
    d = z.T @ m
    return d / np.linalg.norm(d)


def slope(z: np.ndarray, values: np.ndarray, unit: np.ndarray) -> float:
    along, centred = (z - z.mean(0)) @ unit, values - values.mean()
    return float(along @ centred / (centred @ centred))


def drawn(model, crops, points, target, move) -> np.ndarray:
    """(N, 68, 2) landmarks of the crops drawn as `target`, read as `evaluate` reads a drawn face."""
    rgb, _ = draw(model, crops, target, move=move)
    images = (rgb * 255).round().astype(np.uint8)
    return np.array([drawn_landmarks(i, to_mean_face(p)) for i, p in zip(images, points, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a bench/quality.py run (its model folder in the cache)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--stills", nargs=2, type=Path, metavar=("WITHOUT", "WITH"))
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint = load_checkpoint(resolve_checkpoint(args.cache / args.run, "last"))
    model = model_from(checkpoint).eval()
    stats = stored_stats(model, checkpoint.meta)
    names = model.identities
    training = {n: faces_of(model, Path(checkpoint.meta["faces"][n]), n) for n in names}
    result = {"run": args.run, "step": checkpoint.step, "directions": {}}
    for key, (src, _, tgt, _, held_out) in DIRECTIONS.items():
        crops, points, z = faces_of(model, args.cache / "faces" / f"held-out-{held_out.stem}", src, 10**6)
        shift = code_shift(stats, z.mean(0), crop_poses(points, model.config.size).mean(0), len(z), tgt, src)
        opening = mouths(points)
        rule = mouth_gain(stats, z, opening, tgt, src)
        row = {"faces": len(z), "mouth_gain": round(rule, 3)}
        for measure, fn in MEASURES.items():
            train = {n: (zz, np.array([fn(p) for p in pp])) for n, (_, pp, zz) in training.items()}
            unit = stats.mouth if measure == "mouth" else direction(train)
            source = np.array([fn(p) for p in points])
            rule_here = (
                rule
                if measure == "mouth"
                else float(np.clip(slope(*train[tgt], unit) / slope(z, source, unit), *MOUTH_GAINS))
            )
            entry = {
                "slopes": {
                    **{n: round(slope(*train[n], unit), 2) for n in names},
                    "held_out": round(slope(z, source, unit), 2),
                },
                "r_held_out": round(float(np.corrcoef((z - z.mean(0)) @ unit, source)[0, 1]), 3),
                "rule_gain": round(rule_here, 3),
                "drawn": {},
            }
            for gain in sorted({*GAINS, round(rule_here, 2)}):
                move = CodeMove(shift, z.mean(0), unit, gain)
                values = np.array([fn(p) for p in drawn(model, crops, points, tgt, move)])
                entry["drawn"][f"{gain:g}"] = {
                    "spread_ratio": round(float(values.std() / source.std()), 3),
                    "concordance": round(concordance(source, values), 3),
                }
            row[measure] = entry
            print(f"{key} {measure}: slopes {entry['slopes']}, rule gain {rule_here:.2f}; drawn (spread ratio, "
                  "concordance) by gain: " + ", ".join(f"{g} ({d['spread_ratio']:.2f}, {d['concordance']:.2f})"
                                                      for g, d in entry["drawn"].items()))  # fmt: skip
        result["directions"][key] = row
    if args.stills:
        without, with_ = args.stills
        _, _, _, _, held_out = DIRECTIONS["obama-s1"]
        report = json.loads((args.cache / args.run / "report-obama-s1-60m" / "report.json").read_text())
        frames = report["per_frame"]
        opening = np.array([f["mouth"][0] for f in frames])
        order = np.argsort(opening)
        at = {frames[i]["index"] for i in (*order[-3:], *order[:2])}
        tiles = close_ups(held_out, [without, with_], report["frames"], len(at), at)
        out = ROOT / "docs" / "matchmouth-obama-s1.png"
        save_still(np.hstack([np.vstack(t) for t in tiles]), out, "mouth gain stills")
        result["stills"] = (
            f"{out.relative_to(ROOT)} (source's three widest and two most closed mouths; rows source / without / with)"
        )
    result["hardware"] = hardware()
    result["command"] = "python bench/mouth_gain.py --run " + args.run + (" --stills ..." if args.stills else "")
    write_result("mouth_gain", result)


if __name__ == "__main__":
    main()
