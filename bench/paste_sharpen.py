"""The paste's unsharp mask (`convert --sharpen`, DeepFaceLab's blursharpen, faceswap's sharpen) measured:
one model trained by bench/quality.py, converted in both directions at each amount, each swap evaluated
(sharpness and its ceiling among the rest), and the stills stacked (rows: the source, then one per
amount) in docs/<name>-<direction>.png, to be looked at before any figure is believed.

    python bench/paste_sharpen.py --model /tmp/dualface-quality/quality_lite128_gan_recolor_cubic_areafaces_warpoff_60m
"""

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import hardware, write_result
from quality import CACHE, DIRECTIONS, FIELDS, ROOT, close_ups, dualface, evaluate, headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder bench/quality.py trained")
    parser.add_argument("--amounts", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--name", default="paste_sharpen")
    args = parser.parse_args()
    if not any(args.model.glob("*.safetensors")):
        parser.error(f"{args.model}: no checkpoint there, not a model folder")
    face = {name: CACHE / "faces" / name for name in ("s1", "obama")}
    figures: dict[str, dict] = {}
    for direction, (_, _, tgt, _, held_out) in DIRECTIONS.items():
        figures[direction], swaps, frames = {}, [], 0
        for amount in args.amounts:
            swaps.append(args.model / f"{args.name}-{direction}-{amount:g}.mp4")
            dualface("convert", str(held_out), "-m", str(args.model), "--to", tgt, "-o", str(swaps[-1]),
                     "--checkpoint", "last", "--sharpen", f"{amount:g}", "--no-progress")  # fmt: skip
            data = evaluate(args.model, direction, swaps[-1], face, f"{args.name}-{direction}-{amount:g}")
            frames = data["frames"]
            figures[direction][f"{amount:g}"] = {"step": data["step"], "usable": data["usable"],
                                                 "failed": data["failed"], **headline(data["scores"])}  # fmt: skip
        tiles = close_ups(held_out, swaps, frames, 5)
        rows = [np.hstack([t[i] for t in tiles]) for i in range(len(swaps) + 1)]
        Image.fromarray(np.vstack(rows)).save(ROOT / "docs" / f"{args.name}-{direction}.png")

    print(f"\n| direction | --sharpen | {' | '.join(FIELDS)} | usable |")
    print("| --- | --- |" + " --- |" * (len(FIELDS) + 1))
    for direction, by_amount in figures.items():
        for amount, f in by_amount.items():
            cells = ["-" if f[k] is None else f"{f[k]:.3f}" for k in FIELDS]
            print(f"| {direction} | {amount} | " + " | ".join(cells) + f" | {f['usable']} |")
    write_result(args.name, {
        "what": f"one model ({args.model.name}) converted with each --sharpen, each evaluated",
        "command": "python bench/paste_sharpen.py " + shlex.join(sys.argv[1:]),
        "stills": [f"docs/{args.name}-{d}.png (rows: source, then --sharpen {', '.join(map(str, args.amounts))})"
                   for d in figures],
        "directions": figures,
        "hardware": hardware(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
