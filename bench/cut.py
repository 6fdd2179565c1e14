"""How `align.cut` shrinks a face into its crop: the detail it keeps and the moire it leaves, against the
cut it replaced (a bilinear warp at k times the size, box-averaged down) and PIL's Lanczos resize.

Detail: the Laplacian's variance of faces from a 720p White House recording, each cut at a scale (a plain
resize, so PIL's Lanczos resize is the reference), over the reference's. Moire: a grey image under stripes
one pixel wide (above every crop's Nyquist frequency), cut at the scale with a 7 degree turn as an alignment
has: the standard deviation left of the +-30 (0 is none). Extraction (720p faces shrink 0.5-0.65 into the
256 px crop), training (the PNG re-cut to the model's crop: 0.63) and conversion (GRID's faces 0.88 into
lite128's) all shrink so. Cost: milliseconds a call, each cut's best of several, for the crops extraction
and conversion cut from a 720p and a GRID-sized (360x288) frame, and the ratio to the cut it replaced.

    python bench/cut.py          # writes bench/results/cut.json
"""

import math
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from common import hardware, write_result
from dualface.align import cut
from dualface.video import read_video

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "whitehouse" / "obama_02.mp4"
SCALES = (0.95, 0.8, 0.625, 0.5, 0.4)


def area_cut(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """`align.cut` before 2026-12-06, kept as its `fast` path: a bilinear warp at k times the size, then
    cv2's area average."""
    return cut(image, matrix, size, fast=True)


def plain_cut(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """One bicubic warp, no low-pass (how extraction cut before 2026-11-24, but bilinear then)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


CUTS = {"lanczos (align.cut)": cut, "area (before)": area_cut, "plain cubic warp": plain_cut}


def detail(image: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[8:-8, 8:-8].var())


def faces(count: int = 12) -> list[np.ndarray]:
    """count 400 px squares around the face of the clip's frames (the speaker sits at the frame's centre)."""
    out = []
    for index, frame in read_video(CLIP):
        if index % 25 == 0:
            h, w = frame.shape[:2]
            out.append(np.ascontiguousarray(frame[h // 2 - 250 : h // 2 + 150, w // 2 - 200 : w // 2 + 200]))
        if len(out) == count:
            return out
    return out


def turned(scale: float, shift: tuple[float, float]) -> np.ndarray:
    """A shrink by `scale` with a 7 degree turn, as an alignment has."""
    c, s = scale * math.cos(math.radians(7)), scale * math.sin(math.radians(7))
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]], np.float32)


def cost_ms(fn, image: np.ndarray, matrix: np.ndarray, size: int, repeats: int = 30) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(image, matrix, size)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def costs(frame: np.ndarray) -> dict:
    """ms a call: a 720p frame's face cut to extraction's 256 px crop (scale 0.65) and to lite128's (0.33),
    and a GRID-sized frame's to lite128's (0.86), with a 7 degree turn."""
    grid = cv2.resize(frame, (360, 288), interpolation=cv2.INTER_AREA)
    cases = {
        "720p -> 256 px": (frame, 0.65, 256),
        "720p -> 128 px": (frame, 0.33, 128),
        "GRID -> 128 px": (grid, 0.86, 128),
    }
    out = {}
    for name, (image, scale, size) in cases.items():
        out[name] = {
            cut_name: round(cost_ms(fn, image, turned(scale, (5, -20)), size), 2) for cut_name, fn in CUTS.items()
        }
    return out


def main() -> None:
    crops = faces()
    rows = {}
    stripes = np.full((400, 400, 3), 128, np.float32) + np.where(np.arange(400) % 2, 30, -30)[None, :, None]
    stripes = stripes.astype(np.uint8)
    for scale in SCALES:
        size = round(400 * scale)
        resize = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5]], np.float32)
        row = {}
        for name, fn in CUTS.items():
            ratios = []
            for crop in crops:
                reference = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))
                ratios.append(detail(fn(crop, resize, size)) / detail(reference))
            moire = fn(stripes, turned(scale, (20, -10)), size)[20:-20, 20:-20].astype(np.float32).std()
            row[name] = {"detail_vs_lanczos": round(float(np.median(ratios)), 3), "moire": round(float(moire), 2)}
        rows[f"{scale}"] = row
    print(f"\n{'scale':>6s} " + " ".join(f"{n:>26s}" for n in CUTS) + "   (detail vs PIL Lanczos / moire of +-30)")
    for scale, row in rows.items():
        cells = (f"{v['detail_vs_lanczos']:>12.2f}x / {v['moire']:>9.2f}" for v in row.values())
        print(f"{scale:>6s} " + " ".join(f"{c:>26s}" for c in cells))
    frame = next(f for _, f in read_video(CLIP))
    timing = costs(frame)
    print(f"\n{'ms a call':16s} " + " ".join(f"{n:>20s}" for n in CUTS) + "   (x the area cut)")
    for case, row in timing.items():
        base = row["area (before)"]
        print(f"{case:16s} " + " ".join(f"{v:>12.2f} ({v / base:4.1f}x)" for v in row.values()))
    write_result(
        "cut", {"clip": CLIP.name, "faces": len(crops), "scales": rows, "ms_per_call": timing, "hardware": hardware()}
    )


if __name__ == "__main__":
    main()
