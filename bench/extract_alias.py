"""What extraction's filter puts into an HD face: a plain warp (what extraction did before: bicubic where
the crop enlarges, and where it shrinks cv2.warpAffine's INTER_AREA flag, which samples bilinearly)
against `align.cut`'s area average, on the same frames with the same alignment.

Where a face is larger than the extracted crop, a plain warp skips pixels: what lies between them folds
back as a false, position-dependent texture that no decoder can learn to draw, and that inflates the
sharpness reference the evaluation compares swaps with. The ratio of the Laplacian's variance (plain warp
over area average, inside the face) says how much; a face the crop enlarges (GRID) is the control, where
both sample bicubically.

    python bench/extract_alias.py     # reads ../shared/data; writes bench/results/extract_alias.json
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from common import hardware, write_result
from dualface.align import align_matrix, cut, matrix_scale
from dualface.config import ExtractConfig
from dualface.faces import largest, tracked
from dualface.track import TrackerConfig
from dualface.video import probe_video, read_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIPS = ["whitehouse/obama_01.mp4", "whitehouse/obama_02.mp4", "whitehouse/obama_05.mp4", "grid/s1/bbaf2n.mpg"]


def detail(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = image.shape[0]
    return float(cv2.Laplacian(grey, cv2.CV_32F)[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4].var())


def compare(path: Path, count: int, every: int) -> dict[str, float]:
    """Median over `count` faces (every `every`th frame) of plain warp against area average."""
    crop = ExtractConfig(inputs=[path], output=Path("unused"))  # extraction's own crop settings
    ratios, differences, scales = [], [], []
    for index, frame, found in tracked(read_video(path), TrackerConfig(embed_every=0), probe_video(path).fps):
        if index % every or not (face := largest(found)):
            continue
        matrix = align_matrix(face.landmarks, crop.size, crop.coverage, crop.centering)
        flag = cv2.INTER_CUBIC if matrix_scale(matrix) > 1 else cv2.INTER_AREA  # the old extraction's choice
        plain = cv2.warpAffine(frame, matrix, (crop.size,) * 2, flags=flag, borderMode=cv2.BORDER_REPLICATE)
        averaged = cut(frame, matrix, crop.size)
        ratios.append(detail(plain) / detail(averaged))
        differences.append(float(np.abs(plain.astype(int) - averaged).mean()))
        scales.append(matrix_scale(matrix))
        if len(ratios) == count:
            break
    return {
        "crop_pixels_per_frame_pixel": round(float(np.median(scales)), 2),
        "detail_plain_over_averaged": round(float(np.median(ratios)), 2),
        "mean_difference_levels": round(float(np.median(differences)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=15, help="faces per clip")
    parser.add_argument("--every", type=int, default=10, help="frames between faces")
    args = parser.parse_args()
    if missing := [c for c in CLIPS if not (SHARED / c).exists()]:
        parser.error(f"{SHARED / missing[0]}: no such clip (../shared/data is needed)")
    rows = {clip: compare(SHARED / clip, args.count, args.every) for clip in CLIPS}
    print(f"\n{'clip':28s} {'crop/frame px':>13s} {'detail, plain/averaged':>23s} {'mean diff':>10s}")
    for clip, row in rows.items():
        values = list(row.values())
        print(f"{clip:28s} {values[0]:13.2f} {values[1]:22.2f}x {values[2]:10.2f}")
    write_result("extract_alias", {"faces_per_clip": args.count, "clips": rows, "hardware": hardware()})


if __name__ == "__main__":
    main()
