"""Extraction speed: frames/s with the detector on every frame against detect-and-track, on GRID (360x288)
and White House (1280x720) footage from ../shared/data, and the share of frames where a face was found.
Each also as a ratio to a plain decode of the same clips measured in the same run (every frame read to RGB
as extraction reads it, nothing else): what holds from machine to machine.

    python bench/extract.py            # writes bench/results/extract.json

Targets on the 2-core dev machine, tracking: >= 60 fps at 360x288, >= 20 fps at 720p, faces on >= 99%.
"""

import sys
import tempfile
import time
from pathlib import Path

import cv2

from common import hardware, write_result
from dualface import __version__
from dualface.config import ExtractConfig
from dualface.detect import _hog
from dualface.extract import extract
from dualface.identity import _recognizer
from dualface.landmarks import _predictor
from dualface.video import read_video

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SETS = {
    "grid 360x288": sorted((SHARED / "grid" / "s1").glob("*.mpg"))[:4],
    "whitehouse 1280x720": sorted((SHARED / "whitehouse").glob("*.mp4")),
}
MODES = {"detect every frame": 1, "track (detect every 5)": 5}


def run(clips: list[Path], detect_every: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        config = ExtractConfig(inputs=clips, output=Path(out), detect_every=detect_every, progress=False)
        start = time.perf_counter()
        summary = extract(config)
        seconds = time.perf_counter() - start
    if summary.errors:
        raise SystemExit(f"extraction failed: {summary.errors}")
    frames = summary.total("frames_read")
    return {
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 2),
        "face_fraction": round(summary.total("frames_with_face") / frames, 4),
    }


def decode(clips: list[Path]) -> dict:
    """Frames/s of reading the clips' frames and nothing else."""
    start = time.perf_counter()
    frames = sum(1 for clip in clips for _ in read_video(clip))
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 2)}


def main() -> None:
    missing = [name for name, clips in SETS.items() if not clips]
    if missing:
        sys.exit(f"footage missing for {missing}: this benchmark reads ../shared/data")
    start = time.perf_counter()
    _hog(), _predictor(), _recognizer()  # loading the weights (~1 s) is not extraction speed
    load_s = time.perf_counter() - start
    results = {}
    for name, clips in SETS.items():
        results[f"{name} | decode only"] = decode(clips)
        for mode, detect_every in MODES.items():
            results[f"{name} | {mode}"] = run(clips, detect_every)
    machine = {**hardware(), "opencv": cv2.__version__}
    print(f"dualface {__version__} extraction benchmark on {machine['cpu']}, {machine['cores']} cores")
    print(f"weights loaded once in {load_s:.2f} s (not counted)\n")
    header = (
        f"{'footage':<22}{'mode':<26}{'frames':>7}{'fps':>8}{'x detect every':>16}{'x decode':>10}{'faces found':>13}"
    )
    print(header)
    print("-" * len(header))
    for name in SETS:
        base = results[f"{name} | detect every frame"]["fps"]
        decoded = results[f"{name} | decode only"]["fps"]
        print(f"{name:<22}{'decode only':<26}{results[f'{name} | decode only']['frames']:>7}{decoded:>8.1f}")
        for mode in MODES:
            r = results[f"{name} | {mode}"]
            r["ratio_to_detect_every_frame"] = round(r["fps"] / base, 2)
            r["ratio_to_decode"] = round(r["fps"] / decoded, 3)
            print(
                f"{name:<22}{mode:<26}{r['frames']:>7}{r['fps']:>8.1f}{r['fps'] / base:>15.2f}x"
                f"{r['fps'] / decoded:>9.3f}x{100 * r['face_fraction']:>12.1f}%"
            )
    clips = {name: [p.name for p in clips] for name, clips in SETS.items()}
    write_result(
        "extract",
        {
            "version": __version__,
            "hardware": machine,
            "weights_load_s": round(load_s, 2),
            "clips": clips,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
