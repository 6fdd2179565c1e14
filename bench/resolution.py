"""The sharpness a perfect model could reach at each model size and crop: why 64 px cannot pass the
quality bar, and what a tighter crop buys at 128 px.

A model draws its face at S x S pixels and convert pastes it at the face's on-screen size. Take the target's
*real* faces, cut them to the model's crop at S px exactly as training does (`align.cut`), warp them back as
convert's paste does (cubic), and measure the evaluation's sharpness (Laplacian variance in the face at the
on-screen size of the held-out clip) against the untouched faces. A model that reproduced its training faces
perfectly would score this ratio; a real one scores less.

The crop's coverage (the share of its width the face spans, jaw to jaw; `ModelConfig.coverage`) sets how
many of the S x S pixels fall on the face: the face gets S * coverage / FACE_WIDTH pixels per mean-face unit,
so a tighter crop is a finer face at the same cost.

    python bench/resolution.py          # writes bench/results/resolution.json
"""

from pathlib import Path

import cv2
import numpy as np

from common import hardware, write_result
from dualface.align import align_matrix, cut, invert
from dualface.config import CUT, ExtractConfig
from dualface.evaluate import TargetFaces
from dualface.extract import extract
from dualface.faces import largest, tracked
from dualface.metrics import face_scale, sharpness
from dualface.model import ModelConfig
from dualface.prefetch import prefetch
from dualface.track import TrackerConfig
from dualface.video import read_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SIZES = (64, 96, 128, 192)
COVERAGES = (0.75, 0.85, 0.9)  # 0.75: every preset's; the tighter ones at 128 px, lite128's size
BAR = 0.5  # issue 11: sharpness >= 0.5x the target's real faces
# direction: (held-out clip, the target's training clips)
DIRECTIONS = {
    "s1 -> obama": (ROOT / "data/grid/s1-held-out/swau8n.mpg", sorted(SHARED.glob("whitehouse/obama_0[2-7].mp4"))),
    "obama -> s1": (SHARED / "whitehouse/obama_01.mp4", sorted(SHARED.glob("grid/s1/*.mpg"))[:10]),
}


def clip_scale(path: Path, frames: int = 25) -> float:
    """The held-out clip's face size on screen (median over its first frames)."""
    scales = []
    for _, _, found in tracked(prefetch(read_video(path)), TrackerConfig(embed_every=0), 25):
        if face := largest(found):
            scales.append(face_scale(face.raw))
        if len(scales) >= frames:
            break
    return float(np.median(scales))


def perfect_model_ratio(faces: TargetFaces, size: int, scale: float, coverage: float) -> float:
    """Median over the faces of sharpness(cut to size px and pasted back) / sharpness(the face)."""
    config = ModelConfig.from_preset("lite", coverage=coverage)
    ratios = []
    for image, to_mean, landmarks in zip(faces.images, faces.to_mean, faces.landmarks, strict=True):
        matrix = align_matrix(landmarks, size, config.coverage, config.centering)
        height, width = image.shape[:2]
        back = cv2.warpAffine(
            cut(image, matrix, size), invert(matrix), (width, height), flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        ratios.append(sharpness(back, to_mean, scale) / sharpness(image, to_mean, scale))
    return float(np.median(ratios))


def main() -> None:
    cache = Path("/tmp/dualface-resolution") / CUT  # faces cut otherwise would not be extracted again
    rows = {}
    for name, (held_out, clips) in DIRECTIONS.items():
        folder = cache / name.split()[-1]
        extract(ExtractConfig(inputs=clips, output=folder, every=5, progress=False))
        faces = TargetFaces.load(folder, 40)
        scale = min(clip_scale(held_out), faces.scale)  # evaluate never measures above the faces' own size
        rows[name] = {
            "held_out": held_out.name,
            "on_screen_px_per_unit": round(scale, 1),
            "reference_px_per_unit": round(faces.scale, 1),
            "perfect_model_sharpness": {
                f"{s}px": round(perfect_model_ratio(faces, s, scale, COVERAGES[0]), 3) for s in SIZES
            },
            "perfect_model_sharpness_128px_by_coverage": {
                f"{c}": round(perfect_model_ratio(faces, 128, scale, c), 3) for c in COVERAGES
            },
        }
    print(f"\n{'direction':14s} " + " ".join(f"{s:>6d}px" for s in SIZES) + "   (coverage 0.75)")
    for name, row in rows.items():
        print(f"{name:14s} " + " ".join(f"{v:7.2f}x" for v in row["perfect_model_sharpness"].values()))
    print(f"\n{'direction':14s} " + " ".join(f"{c:>8.2f}" for c in COVERAGES) + "   (128 px, by coverage)")
    for name, row in rows.items():
        by_coverage = row["perfect_model_sharpness_128px_by_coverage"].values()
        print(f"{name:14s} " + " ".join(f"{v:7.2f}x" for v in by_coverage))
    print(f"the sharpness of a perfect model; the bar: {BAR}x")
    write_result("resolution", {"bar": BAR, "directions": rows, "hardware": hardware()})


if __name__ == "__main__":
    main()
