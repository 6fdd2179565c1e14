"""The evaluation's controls on real footage: does each measure tell a perfect output from a useless one?

For every clip: the drawn-face mouth and eye opening against the whole-frame landmarks of the real face
(is the measure valid?), the concordance of a static swap (the clip's first face pasted on every frame
through the conversion's own compositing: it must read near 0, |x| <= 0.15) and of the source itself
(1.0), and sharpness of a Gaussian-blurred copy (sigma 3 px at 720p, scaled to the clip's height) over the
source's (it must read far below 1).

    python bench/controls.py                      # the bundled GRID clips, and ../shared's White House clips
    python bench/controls.py CLIP [CLIP ...]
"""

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common import hardware, write_result
from dualface.align import align_matrix, cut, to_mean_face
from dualface.composite import Face, composite
from dualface.config import PasteConfig
from dualface.faces import tracked
from dualface.landmarks import mouth_opening
from dualface.metrics import concordance, drawn_landmarks, face_scale, pearson, sharpness
from dualface.pose import eye_opening
from dualface.track import TrackerConfig
from dualface.video import probe_video, read_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "whitehouse"


def measure(clip: Path, most: int = 150) -> dict:
    info = probe_video(clip)
    sigma = 3.0 * info.height / 720
    size, states = 128, {}
    rows, still = [], None
    for _, frame, found in tracked(read_video(clip), TrackerConfig(embed_every=0), info.fps):
        if not found:
            continue
        points, placed = found[0].raw, found[0].landmarks
        matrix = align_matrix(placed, size, 0.6, "face")
        crop = cut(frame, matrix, size)
        if still is None:
            still = crop.astype(np.float32) / 255
        static = composite(frame, [Face(0, placed, matrix, crop, still)], PasteConfig(), size, states)
        to_mean, scale = to_mean_face(points), face_scale(points)
        real, pasted = drawn_landmarks(frame, to_mean), drawn_landmarks(static, to_mean)
        blurred = cv2.GaussianBlur(frame, (0, 0), sigma)
        rows.append(
            (
                mouth_opening(points),
                eye_opening(points),
                mouth_opening(real),
                eye_opening(real),
                mouth_opening(pasted),
                eye_opening(pasted),
                sharpness(frame, to_mean, scale),
                sharpness(blurred, to_mean, scale),
            )
        )
        if len(rows) >= most:
            break
    v = np.array(rows)
    rnd = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {
        "clip": clip.name,
        "size": f"{info.width}x{info.height}",
        "frames": len(v),
        "mouth_valid_r": rnd(pearson(v[:, 0], v[:, 2])),
        "eyes_valid_r": rnd(pearson(v[:, 1], v[:, 3])),
        "mouth_ceiling": rnd(concordance(v[:, 2], v[:, 2])),
        "mouth_static": rnd(concordance(v[:, 2], v[:, 4])),
        "eyes_static": rnd(concordance(v[:, 3], v[:, 5])),
        "blur_sigma_px": round(sigma, 2),
        "sharpness_blurred_over_source": rnd(float(np.median(v[:, 7]) / np.median(v[:, 6]))),
    }


def main() -> None:
    clips = [Path(p) for p in sys.argv[1:]] or [
        *sorted((ROOT / "data" / "grid" / "s1").glob("*.mpg")),
        *sorted((ROOT / "data" / "grid" / "s1-held-out").glob("*.mpg")),
        ROOT / "data" / "grid" / "speakers" / "brbk7n.mpg",
        *sorted(SHARED.glob("*.mp4")),
    ]
    start = time.perf_counter()
    results = [measure(clip) for clip in clips]
    keys = [
        "mouth_valid_r",
        "eyes_valid_r",
        "mouth_ceiling",
        "mouth_static",
        "eyes_static",
        "sharpness_blurred_over_source",
    ]
    print(
        f"{'clip':14s} {'size':>9s} "
        + " ".join(
            f"{k:>14s}"
            for k in ["mouth valid r", "eyes valid r", "ceiling", "static mouth", "static eyes", "blur sharpness"]
        )
    )
    for r in results:
        print(f"{r['clip']:14s} {r['size']:>9s} " + " ".join(f"{'-' if r[k] is None else r[k]:>14}" for k in keys))
    worst = {
        "static_abs_max": max(abs(r[k]) for r in results for k in ("mouth_static", "eyes_static") if r[k] is not None),
        "mouth_valid_r_min": min(r["mouth_valid_r"] for r in results),
        "blurred_sharpness_max": max(r["sharpness_blurred_over_source"] for r in results),
    }
    print(f"\nworst: {worst}  ({time.perf_counter() - start:.0f} s)")
    write_result(
        "controls", {"command": "python bench/controls.py", "clips": results, "worst": worst, "hardware": hardware()}
    )


if __name__ == "__main__":
    main()
