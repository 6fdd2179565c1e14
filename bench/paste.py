"""The paste's options measured: one model trained by bench/quality.py, converted in both directions once
per variant (a string of `dualface convert` options), each swap evaluated, and the stills stacked (rows: the
source, then one per variant) in docs/<name>-<direction>.png, to be looked at before any figure is believed.
With --demo, the model of a `dualface demo` output folder instead (its best checkpoint, its faces): the
held-out swau8n into brbk7n.

    # the unsharp mask (convert --sharpen: DeepFaceLab's blursharpen, faceswap's sharpen)
    python bench/paste.py --model /tmp/dualface-quality/quality_lite128_gan_recolor_cubic_areafaces_warpoff_60m \
        --name paste_sharpen --variants "--sharpen 0" "--sharpen 0.5" "--sharpen 1"
    # the mask's edge: does a paste that ends inside the source's jaw keep the source's face shape?
    python bench/paste.py --model /tmp/dualface-quality/quality_lite128_gan_recolor_cubic_areafaces_warpoff06_60m \
        --name paste_mask --variants "" "--erode 3" "--erode 6" "--mask hull"
    # the target's hair left out of the mask (a variant starting with "--" takes a leading space)
    python bench/paste.py --demo demo-output --name paste_hair_demo --variants " --no-hair" ""

(`paste_color.py` measures the colour transfers, with a figure of its own.)
"""

import argparse
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from common import hardware, save_still, write_result
from quality import CACHE, DIRECTIONS, FIELDS, ROOT, close_ups, dualface, evaluate_swap, headline

DEMO = ("s1", "brbk7n", ROOT / "data/grid/s1-held-out/swau8n.mpg")  # demo.py's pair and its held-out clip


def slug(variant: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "_", variant.lower()).strip("_-") or "default"  # "--erode -2" != "--erode 2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, help="a model folder bench/quality.py trained")
    which.add_argument("--demo", type=Path, help="a `dualface demo` output folder")
    parser.add_argument("--variants", nargs="+", required=True, help='convert options, one string each ("": defaults)')
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    # direction: (source, target, held-out clip); the faces of each identity; which checkpoint converts
    if args.demo:
        model, checkpoint, embed = args.demo / "model", "best", 100  # as the demo converts and evaluates
        pairs, face = {"demo-s1-brbk7n": DEMO}, {name: args.demo / "faces" / name for name in DEMO[:2]}
    else:
        model, checkpoint, embed = args.model, "last", 50  # as bench/quality.py does
        pairs = {d: (src, tgt, held_out) for d, (src, _, tgt, _, held_out) in DIRECTIONS.items()}
        face = {name: CACHE / "faces" / name for name in ("s1", "obama")}
    if not any(model.glob("*.safetensors")):
        parser.error(f"{model}: no checkpoint there, not a model folder")
    figures: dict[str, dict] = {}
    for direction, (src, tgt, held_out) in pairs.items():
        figures[direction], swaps, frames = {}, [], 0
        for variant in args.variants:
            tag = f"{args.name}-{direction}-{slug(variant)}"
            swaps.append(model / f"{tag}.mp4")
            dualface("convert", str(held_out), "-m", str(model), "--to", tgt, "-o", str(swaps[-1]),
                     "--checkpoint", checkpoint, "--no-progress", *shlex.split(variant))  # fmt: skip
            data = evaluate_swap(model, held_out, swaps[-1], src, tgt, face[tgt], tag, embed)
            frames = data["frames"]
            figure = {"step": data["step"], "usable": data["usable"], "failed": data["failed"]}
            figures[direction][variant or "(defaults)"] = figure | headline(data["scores"])
        tiles = close_ups(held_out, swaps, frames, 5)
        rows = [np.hstack([t[i] for t in tiles]) for i in range(len(swaps) + 1)]
        save_still(np.vstack(rows), ROOT / "docs" / f"{args.name}-{direction}.png", "paste stills")

    print(f"\n| direction | variant | {' | '.join(FIELDS)} | usable |")
    print("| --- | --- |" + " --- |" * (len(FIELDS) + 1))
    for direction, by_variant in figures.items():
        for variant, f in by_variant.items():
            cells = ["-" if f[k] is None else f"{f[k]:.3f}" for k in FIELDS]
            print(f"| {direction} | {variant} | " + " | ".join(cells) + f" | {f['usable']} |")
    write_result(args.name, {
        "what": f"one model ({model}) converted with each variant of the paste, each evaluated",
        "command": "python bench/paste.py " + shlex.join(sys.argv[1:]),
        "stills": [f"docs/{args.name}-{d}.png (rows: source, then {' / '.join(figures[d])})" for d in figures],
        "directions": figures,
        "hardware": hardware(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
