"""Where a swap's landmark error lies: in the face shape it draws, or in the pose and expression it misses.

For each (source video, output video), every frame's output landmarks are fitted where `evaluate` fits
them (`metrics.observe`) and taken from the source's in the source's mean-face frame, over its
inter-ocular distance (`metrics.landmark_offsets`). Their mean over the video is what every frame shares:
the drawn person's proportions (`landmark_shape`); what is left varies frame to frame: pose and expression
not followed (`landmark_tracking`). Per feature, the mean offset is also read as a change of width, of
height and of place, in inter-ocular distances (x to the face's right in the image, y down).

The default pairs are bench/quality.py's two directions: the target's own real faces pasted in
(bench/ceiling.py's videos) and a trained model's conversions (`--run`, a bench/quality.py run).

    python bench/landmark_split.py --run quality_lite128_gan_recolor_warpoff06_cov09_recentre_seed1_60m
"""

import argparse
from pathlib import Path

import numpy as np

from common import hardware, write_result
from dualface.align import to_mean_face, transform_points
from dualface.faces import largest, tracked
from dualface.metrics import METRICS, interocular, landmark_offsets, observe
from dualface.track import TrackerConfig
from dualface.video import probe_video, read_video
from quality import CACHE, DIRECTIONS

FEATURES = {"jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48),
            "lips": slice(48, 60)}  # fmt: skip


def offsets(source: Path, output: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 68, 2) offsets of the output's landmarks from the source's, and the source's own landmarks
    in its mean-face frame over its inter-ocular distance (their mean: where each feature sits)."""
    faces = tracked(read_video(source), TrackerConfig(embed_every=0), probe_video(source).fps)
    moved, at = [], []
    for (_, frame, found), (_, out) in zip(faces, read_video(output), strict=False):
        face = largest(found)
        if face is None:
            continue
        src = observe(frame, face.raw)
        moved.append(landmark_offsets(src, observe(out, face.raw)).reshape(68, 2))
        points = transform_points(src.fitted, to_mean_face(src.fitted))
        at.append(points / interocular(points))
    return np.array(moved), np.array(at)


def split(moved: np.ndarray, at: np.ndarray) -> dict:
    shared = moved.mean(0)
    varying = moved - shared
    source, drawn = at.mean(0), at.mean(0) + shared
    out = {
        "frames": len(moved),
        "landmark_error": float(np.linalg.norm(moved, axis=2).mean()),
        # read as `evaluate` reads them, from the same per-frame offsets
        "landmark_shape": METRICS["landmark_shape"].summary(moved.reshape(len(moved), -1)),
        "landmark_tracking": METRICS["landmark_tracking"].summary(moved.reshape(len(moved), -1)),
    }
    for name, part in FEATURES.items():
        out[name] = {
            "shape": float(np.linalg.norm(shared[part], axis=1).mean()),
            "tracking": float(np.linalg.norm(varying[:, part], axis=2).mean()),
            "wider": float(np.ptp(drawn[part, 0]) - np.ptp(source[part, 0])),
            "taller": float(np.ptp(drawn[part, 1]) - np.ptp(source[part, 1])),
            "right": float(shared[part, 0].mean()),
            "lower": float(shared[part, 1].mean()),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a bench/quality.py run whose conversions to split too")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--name", default="landmark_split")
    args = parser.parse_args()
    pairs = {}
    for direction, (*_, held_out) in DIRECTIONS.items():
        pairs[f"{direction}, the target's real faces"] = (held_out, args.cache / "ceiling" / f"{direction}-rct.mp4")
        if args.run:
            pairs[f"{direction}, {args.run}"] = (held_out, args.cache / args.run / f"swap-{direction}-60m.mp4")
    results = {}
    for label, (source, output) in pairs.items():
        if not output.exists():
            raise SystemExit(f"{output}: not found (run bench/ceiling.py, or bench/quality.py --name {args.run})")
        results[label] = row = split(*offsets(source, output))
        print(f"\n{label}: landmark error {row['landmark_error']:.4f} = shape {row['landmark_shape']:.4f} "
              f"with tracking {row['landmark_tracking']:.4f} ({row['frames']} frames)")  # fmt: skip
        print(
            f"  {'feature':8s} {'shape':>7s} {'tracking':>9s} {'wider':>7s} {'taller':>7s} {'right':>7s} {'lower':>7s}"
        )
        for name in FEATURES:
            f = row[name]
            print(f"  {name:8s} {f['shape']:7.3f} {f['tracking']:9.3f} {f['wider']:+7.3f} {f['taller']:+7.3f} "
                  f"{f['right']:+7.3f} {f['lower']:+7.3f}")  # fmt: skip
    write_result(args.name, {
        "what": "each swap's landmark error split into the offset every frame shares (the drawn face shape) and "
                "what varies frame to frame (pose and expression not followed); per feature, the shared offset "
                "as a change of width, height and place, in inter-ocular distances (x right, y down)",
        "command": "python bench/landmark_split.py" + (f" --run {args.run}" if args.run else ""),
        "results": results,
        "hardware": hardware(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
