"""Is the sharpness figure a property of the face, or of the resampling? Real faces measured as a swap is.

Each White House recording's frames are shrunk (area) so the face is at GRID's on-screen size, the size
the s1 -> Obama swap is read at, and measured by `metrics.observe` exactly as `evaluate` measures an
output (cut out as the reference faces were extracted, then read on the face's own grid at the smaller of
the two sizes), against that recording's own extracted faces: a real face should read about 1x. The same
frames blurred (Gaussian, sigma in on-screen pixels) say what a figure means; and the figure must not move
when the face's size moves by 0.5% (resampled near its own size, the old measure jumped 0.6x <-> 1.0x).
Also: the same frames unsharp-masked (1 x the detail above a 1 px Gaussian), as they are and after a
0.7 px blur (what `convert --sharpen` does and does not give back), and the recording at its own 720p
size, where the output is the larger face and is area-averaged down to the references' size.

    python bench/sharpness_scale.py     # needs bench/quality.py's face cache; writes bench/results/sharpness_scale.json
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from common import hardware, write_result
from dualface.align import to_mean_face, transform_points
from dualface.alignments import read_face_png
from dualface.data import face_files
from dualface.faces import largest, tracked
from dualface.metrics import face_scale, sharpness
from dualface.track import TrackerConfig
from dualface.video import probe_video, read_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "whitehouse"
GRID_SCALE = 119.4  # swau8n's face, image pixels per mean-face unit (median)
BLURS = (0.0, 0.5, 0.7, 1.0, 1.5)


def frames(clip: Path, count: int, scale: float | None = GRID_SCALE) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` faces of the clip, every 7th frame, shrunk by one factor to `scale` (GRID's face size), or
    as they are (None)."""
    found_faces = []
    for index, frame, found in tracked(read_video(clip), TrackerConfig(embed_every=0), probe_video(clip).fps):
        if index % 7 == 0 and (face := largest(found)):
            found_faces.append((frame, face.raw))
        if len(found_faces) == count:
            break
    if scale is None:
        return found_faces
    k = scale / float(np.median([face_scale(p) for _, p in found_faces]))
    shrink = lambda f: cv2.resize(f, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)  # noqa: E731
    return [(shrink(f), (p + 0.5) * k - 0.5) for f, p in found_faces]


def references(folder: Path, stem: str, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The recording's own extracted faces, as `evaluate` reads target faces."""
    files = [p for p in face_files(folder) if p.name.startswith(f"{stem}_")]
    out = []
    for path in files[:: max(1, len(files) // count)][:count]:
        image, record = read_face_png(path)
        points = transform_points(np.array(record["landmarks"], np.float32), np.array(record["matrix"]))
        out.append((image, points))
    return out


def ratio(shown, refs, blur: float, at: float = 1.0, unsharp: float = 0.0) -> float:
    """Median sharpness of the shown faces (blurred, then unsharp-masked by `unsharp` at sigma 1 px, their
    size scaled by `at`) over the references', as `evaluate` reads them."""
    ref_scale = float(np.median([face_scale(p) for _, p in refs]))
    read = []
    for frame, points in shown:
        image = cv2.GaussianBlur(frame, (0, 0), blur) if blur else frame
        if unsharp:
            image = cv2.addWeighted(image, 1 + unsharp, cv2.GaussianBlur(image, (0, 0), 1.0), -unsharp, 0)
        read.append(sharpness(image, to_mean_face(points), at * min(face_scale(points), ref_scale), ref_scale))
    size = min(float(np.median([face_scale(p) for _, p in shown])), ref_scale)
    own = np.median([sharpness(image, to_mean_face(points), size) for image, points in refs])
    return round(float(np.median(read) / own), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=Path, default=Path("/tmp/dualface-quality/faces/obama"))
    parser.add_argument("--clips", nargs="+", default=["obama_02", "obama_05", "obama_07"])
    parser.add_argument("--count", type=int, default=30, help="faces per clip")
    args = parser.parse_args()
    if not args.faces.is_dir():
        parser.error(f"{args.faces}: no such face folder (run bench/quality.py once to extract it)")
    rows = {}
    for stem in args.clips:
        shown, refs = frames(SHARED / f"{stem}.mp4", args.count), references(args.faces, stem, 2 * args.count)
        rows[stem] = {
            "blur": {str(b): ratio(shown, refs, b) for b in BLURS},
            "sizes_0.5pct_apart": [ratio(shown, refs, 0.0, at) for at in (0.995, 1.0, 1.005)],
            # an unsharp mask restores what a blur only weakened, and lifts a real face past the ceiling
            "unsharp_1": {str(b): ratio(shown, refs, b, unsharp=1.0) for b in (0.0, 0.7)},
            "own_size": ratio(frames(SHARED / f"{stem}.mp4", args.count, None), refs, 0.0),  # the output larger
        }
    head = " ".join(f"{'s=' + str(b):>7s}" for b in BLURS)
    print("\nreal faces at GRID's size over their own recording's faces, by Gaussian blur sigma (on-screen px)")
    print(f"{'clip':10s} {head}   sizes 0.5% apart (no blur)   unsharp 1: s=0 / s=0.7   at its own size")
    for stem, row in rows.items():
        apart = " / ".join(f"{v:.2f}" for v in row["sizes_0.5pct_apart"])
        sharpened = " / ".join(f"{v:.2f}x" for v in row["unsharp_1"].values())
        print(f"{stem:10s} " + " ".join(f"{v:6.2f}x" for v in row["blur"].values())
              + f"   {apart}          {sharpened}          {row['own_size']:.2f}x")  # fmt: skip
    write_result("sharpness_scale", {"grid_scale": GRID_SCALE, "faces": str(args.faces), "clips": rows,
                                     "hardware": hardware()})  # fmt: skip


if __name__ == "__main__":
    main()
