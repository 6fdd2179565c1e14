"""Conversion: speed against a plain transcode of the same clip in the same run, the busy time of each
stage, and what temporal smoothing and each colour transfer do to flicker and to the face's colour.

    python bench/convert.py [MODEL_DIR --to IDENTITY]     # writes bench/results/convert.json
    python bench/convert.py --speed-only                  # only the speed part (keeps the rest of the file)

MODEL_DIR defaults to the starter `lite` weights (models/starter-lite-grid.safetensors) drawing brbk7n.
Speed: the 720p White House clip obama_01 (134 frames, with sound) and the GRID clip, each converted with
the defaults and transcoded (decoded and re-encoded to H.264 with the very settings and sound handling
convert's writer uses: crf 18, veryfast, decoding in a thread ahead of the encoder), alternating, twice
each, after one untimed conversion that loads the detector, landmark and face models. The ratio convert
fps / transcode fps is what holds from machine to machine; the target is >= 0.5 at 720p. Stage times are
each stage's busy seconds: the stages overlap in threads, so they add up to more than the wall time.

Quality (not with --speed-only): flicker is the mean absolute frame-to-frame change inside the source's
face hull, output over source (1.0: the swap adds no shimmer). Face colour error is the CIE76 distance
between the mean Lab colour of the output's face and the source's. Target: flicker ratio with smoothing
<= 1.2.
"""

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from common import hardware, write_result
from dualface import __version__
from dualface.alignments import load_alignments
from dualface.color import COLOR_TRANSFERS
from dualface.config import ConvertConfig, ExtractConfig, PasteConfig
from dualface.convert import convert
from dualface.evaluate import face_color_error, flicker
from dualface.extract import extract
from dualface.masks import hull_in_frame
from dualface.prefetch import prefetch
from dualface.video import read_video
from dualface.writer import video_writer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
STARTER = ROOT / "models" / "starter-lite-grid.safetensors"
SPEED_CLIPS = {
    "whitehouse 1280x720": SHARED / "whitehouse" / "obama_01.mp4",  # not in the quality runs' training
    "grid 360x288": ROOT / "data" / "grid" / "s1-held-out" / "swau8n.mpg",
}
CLIPS = {
    "grid 360x288": SHARED / "grid" / "s1" / "swau8n.mpg",  # last s1 clip by name: held out by time_to_swap
    "whitehouse 1280x720": SHARED / "whitehouse" / "obama_04.mp4",
}
T = TypeVar("T")
STAGES = ("decode+track", "crop", "model", "blend", "encode")  # encode: the mark, I420 and x264


def transcode(clip: Path, output: Path) -> float:
    """Frames/s of a plain decode + H.264 re-encode with convert's own writer and settings."""
    start = time.perf_counter()
    count = 0
    with video_writer(
        output, clip, ConvertConfig.crf, ConvertConfig.x264_preset, kind="transcode", mark=False
    ) as write:
        for _, frame in prefetch(read_video(clip)):
            write(frame)
            count += 1
    return count / (time.perf_counter() - start)


def cpu_seconds() -> float:
    """User + system CPU time of this process, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(run: Callable[..., T], *args: Any) -> tuple[T, float, float]:
    """run(*args)'s result, with the wall seconds and the CPU seconds it took."""
    cpu, start = cpu_seconds(), time.perf_counter()
    result = run(*args)
    return result, time.perf_counter() - start, cpu_seconds() - cpu


def speed(model: Path, to: str, work: Path, rounds: int = 2) -> dict:
    """Convert fps against transcode fps on each clip, alternating, `rounds` times each; and the CPU time
    each spends per frame, with how many cores that kept busy (what says whether a pipeline is short of CPU
    or of overlap)."""
    out: dict = {}
    for name, clip in SPEED_CLIPS.items():
        transcoded, converted, busy = [], [], []
        seconds: dict[str, list[tuple[float, float]]] = {"transcode": [], "convert": []}  # (wall, CPU) per run
        for _ in range(rounds):
            fps, wall, used = measured(transcode, clip, work / "transcode.mp4")
            transcoded.append(fps)
            seconds["transcode"].append((wall, used))
            config = ConvertConfig(clip, model, work / "speed.mp4", to, progress=False)
            summary, wall, used = measured(convert, config)
            converted.append(summary.frames / wall)
            seconds["convert"].append((wall, used))
            busy.append(summary.timings)
        frames = summary.frames
        out[name] = {
            "clip": str(clip.relative_to(ROOT.parent if clip.is_relative_to(SHARED) else ROOT)),
            "frames": frames,
            "transcode_fps": [round(v, 2) for v in transcoded],
            "convert_fps": [round(v, 2) for v in converted],
            "ratio": round(statistics.mean(converted) / statistics.mean(transcoded), 3),
            "busy_ms_per_frame": {
                k: round(statistics.mean(b.get(k, 0.0) for b in busy) / frames * 1000, 1) for k in STAGES
            },
            **{
                f"{kind}_cpu": {
                    "ms_per_frame": round(sum(u for _, u in runs) / (frames * rounds) * 1000, 1),
                    "cores_busy": round(sum(u for _, u in runs) / sum(w for w, _ in runs), 2),
                }
                for kind, runs in seconds.items()
            },
        }
    return out


def frames_of(path: Path) -> list[np.ndarray]:
    return [frame for _, frame in read_video(path)]


def face_regions(clip: Path, work: Path, count: int, shape: tuple) -> list[np.ndarray | None]:
    """The source's face hull on every frame, from an independent extraction of the clip."""
    out = work / f"faces-{clip.stem}"
    extract(ExtractConfig(inputs=[clip], output=out, progress=False, embed_every=10**6))
    regions: list[np.ndarray | None] = [None] * count
    for entry in load_alignments(out / f"{clip.stem}.alignments.json")["frames"]:
        regions[entry["index"]] = hull_in_frame(np.array(entry["faces"][0]["landmarks"]), shape)
    return regions


def run(clip: Path, output: Path, model: Path, to: str, **settings) -> tuple[dict, list[np.ndarray]]:
    start = time.perf_counter()
    summary = convert(ConvertConfig(input=clip, model=model, output=output, to=to, progress=False, **settings))
    seconds = time.perf_counter() - start
    spent = sum(summary.timings.values())
    return {
        "frames": summary.frames,
        "frames_swapped": summary.frames_swapped,
        "seconds": round(seconds, 2),
        "fps": round(summary.frames / seconds, 2),
        "share": {k: round(summary.timings.get(k, 0.0) / spent, 3) for k in STAGES},
        "ms_per_frame": {k: round(summary.timings.get(k, 0.0) / summary.frames * 1000, 1) for k in STAGES},
    }, frames_of(output)


def still(source: np.ndarray, output: np.ndarray, region: np.ndarray, path: Path) -> None:
    """Source and swap side by side, cropped around the face, for the docs."""
    ys, xs = np.nonzero(region)
    pad = int(0.6 * (ys.max() - ys.min()))
    top, bottom = max(0, ys.min() - pad), min(source.shape[0], ys.max() + pad // 2)
    left, right = max(0, xs.min() - pad), min(source.shape[1], xs.max() + pad)
    pair = np.concatenate([source[top:bottom, left:right], output[top:bottom, left:right]], 1)
    scale = 512 / pair.shape[0]
    image = Image.fromarray(pair).resize((round(pair.shape[1] * scale), 512), Image.LANCZOS)
    from dualface.provenance import png_info

    image.save(path, pnginfo=png_info("conversion still: source left, swap right"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="?", help="a model folder (default: the starter lite weights)")
    parser.add_argument("--to", default="brbk7n")
    parser.add_argument("--speed-only", action="store_true", help="measure speed only; keep the file's other parts")
    args = parser.parse_args()
    missing = [str(p) for p in [*CLIPS.values(), *SPEED_CLIPS.values()] if not p.exists()]
    if missing:
        sys.exit(f"footage missing: {missing} (this benchmark reads ../shared/data)")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model is None:
            args.model = work / "starter"
            args.model.mkdir()
            (args.model / "best.safetensors").symlink_to(STARTER)
        # Load the detector, predictor and model once so the first timed run doesn't pay for it.
        convert(ConvertConfig(CLIPS["grid 360x288"], args.model, work / "warm.mp4", args.to, progress=False))
        speeds = speed(args.model, args.to, work)
        for name, clip in CLIPS.items() if not args.speed_only else ():
            source = frames_of(clip)
            regions = face_regions(clip, work, len(source), source[0].shape)
            base = flicker(source, regions)
            entry: dict = {"clip": str(clip.relative_to(SHARED)), "resolution": list(source[0].shape[:2])}
            entry["default"], out = run(clip, work / "out.mp4", args.model, args.to)
            entry["default"]["flicker_ratio"] = round(flicker(out, regions) / base, 3)
            entry["default"]["face_color_error"] = round(face_color_error(source, out, regions), 2)
            middle = len(source) // 2
            still(source[middle], out[middle], regions[middle], ROOT / "docs" / f"convert-{clip.stem}.png")
            _, rough = run(clip, work / "rough.mp4", args.model, args.to, paste=PasteConfig(smooth=False))
            entry["no_smoothing_flicker_ratio"] = round(flicker(rough, regions) / base, 3)
            entry["color"] = {}
            for color in COLOR_TRANSFERS:
                _, out = run(clip, work / f"{color}.mp4", args.model, args.to, paste=PasteConfig(color=color))
                entry["color"][color] = {
                    "face_color_error": round(face_color_error(source, out, regions), 2),
                    "flicker_ratio": round(flicker(out, regions) / base, 3),
                }
            results[name] = entry

    machine = hardware()
    print(
        f"dualface {__version__} convert benchmark on {machine['cpu']} ({machine['capability']}), "
        f"{machine['cores']} cores"
    )
    header = f"\n{'clip':22s} {'transcode fps':>14s} {'convert fps':>12s} {'ratio':>7s}   busy ms/frame: "
    print(header + " ".join(STAGES))
    for name, r in speeds.items():
        busy = " ".join(f"{s} {r['busy_ms_per_frame'][s]}" for s in STAGES)
        print(
            f"{name:22s} {statistics.mean(r['transcode_fps']):14.1f} {statistics.mean(r['convert_fps']):12.1f} "
            f"{r['ratio']:6.2f}x   {busy}"
        )
        for kind in ("transcode", "convert"):
            c = r[f"{kind}_cpu"]
            print(f"{'':22s} {kind}: {c['ms_per_frame']} ms of CPU per frame, {c['cores_busy']} cores busy")
    print("(ratio: convert fps / transcode fps, the same clip, encoder and settings, measured alternately)")
    payload = {
        "version": __version__,
        "hardware": machine,
        "model": "starter lite weights" if args.model.name == "starter" else str(args.model),
        "to": args.to,
        "defaults": {
            **{k: getattr(PasteConfig, k) for k in ("color", "mask", "blend")},
            **{k: getattr(ConvertConfig, k) for k in ("crf", "x264_preset")},
        },
        "speed": speeds,
    }
    if args.speed_only:
        previous = ROOT / "bench" / "results" / "convert.json"
        if previous.exists():
            kept = json.loads(previous.read_text())
            payload["quality"] = kept.get("quality", {k: kept[k] for k in ("model", "to", "results") if k in kept})
        write_result("convert", payload)
        return
    print(f"\n{'clip':22s} {'fps':>6s}  " + "  ".join(f"{s:>12s}" for s in STAGES))
    for name, entry in results.items():
        d = entry["default"]
        print(f"{name:22s} {d['fps']:6.1f}  " + "  ".join(f"{d['share'][s]:11.0%} " for s in STAGES))
    print(f"\n{'clip':22s} {'flicker, smoothing on':>22s} {'off':>8s} {'on / off':>9s}")
    for name, entry in results.items():
        on, off = entry["default"]["flicker_ratio"], entry["no_smoothing_flicker_ratio"]
        print(f"{name:22s} {on:22.3f} {off:8.3f} {on / off:9.2f}")
    print(f"\n{'colour transfer':16s} " + " ".join(f"{n + ' dE':>24s} {'flicker':>8s}" for n in results))
    for color in COLOR_TRANSFERS:
        cells = [results[n]["color"][color] for n in results]
        print(f"{color:16s} " + " ".join(f"{c['face_color_error']:24.2f} {c['flicker_ratio']:8.3f}" for c in cells))
    write_result("convert", {**payload, "quality": {"model": payload["model"], "to": args.to, "results": results}})


if __name__ == "__main__":
    main()
