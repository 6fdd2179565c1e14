"""How much of a face's detail the training targets keep, by the filter augmentation resamples with.

Every augmentation draw (rotation, zoom, shift, flip) lands the face at a random sub-pixel offset, and the
decoders learn to draw what they are shown. Take each person's faces at lite128's crop, draw the
augmentation's random similarity as training does (`augment.affine`), resample with each filter, and
measure the Laplacian's variance inside the face's hull against the plain (unmoved) crop: the median ratio
is the share of the detail a decoder is trained to draw.

    python bench/resample.py            # needs bench/quality.py's face cache; writes bench/results/resample.json
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from common import hardware, write_result
from dualface.augment import affine
from dualface.config import AugmentConfig
from dualface.data import center_crop, load_face_set
from dualface.masks import MASKS
from dualface.model import ModelConfig

FILTERS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def detail(image: np.ndarray, inside: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[inside].var())


def kept(folder: Path, preset: str, faces: int) -> dict[str, float]:
    """Median over `faces` faces of detail(augmented target) / detail(plain crop), per filter."""
    cfg = ModelConfig.from_preset(preset)
    face_set = load_face_set(folder, cfg, folder.name, limit=faces)
    work, size = face_set.faces.shape[1], cfg.size
    crops, points = center_crop(face_set.faces, face_set.landmarks, size)
    rng, ratios = np.random.default_rng(0), {name: [] for name in FILTERS}
    for image, crop, crop_points in zip(face_set.faces, crops, points, strict=True):
        inside = MASKS["hull"](crop_points, size) > 0.5
        matrix, _ = affine(rng, AugmentConfig(), work, size)
        for name, flag in FILTERS.items():
            moved = cv2.warpAffine(image, matrix, (size, size), flags=flag, borderMode=cv2.BORDER_REPLICATE)
            ratios[name].append(detail(moved, inside) / detail(crop, inside))
    return {name: round(float(np.median(r)), 3) for name, r in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=Path("/tmp/dualface-quality/faces"))
    parser.add_argument("--people", nargs="+", default=["s1", "obama"])
    parser.add_argument("--preset", default="lite128")
    parser.add_argument("--count", type=int, default=300, help="faces per person")
    args = parser.parse_args()
    if missing := [p for p in args.people if not (args.faces / p).is_dir()]:
        parser.error(f"no face folder {args.faces / missing[0]} (run bench/quality.py once to extract it)")
    rows = {person: kept(args.faces / person, args.preset, args.count) for person in args.people}
    print(f"\n{'person':8s} " + " ".join(f"{name:>9s}" for name in FILTERS) + "  (detail kept)")
    for person, row in rows.items():
        print(f"{person:8s} " + " ".join(f"{v:8.2f}x" for v in row.values()))
    write_result("resample", {"preset": args.preset, "faces_per_person": args.count, "kept": rows,
                              "hardware": hardware()})  # fmt: skip


if __name__ == "__main__":
    main()
