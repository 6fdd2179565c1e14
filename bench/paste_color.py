"""The paste's colour transfers side by side: one model trained by bench/quality.py, converted in both
directions with each `--color`, each swap evaluated, and the stills stacked (rows: the source, then one
per transfer) in docs/<name>-<direction>.png.

Beside the evaluation's figures, the "grey tint": what each transfer does to the grey parts of the drawn
face (eye whites, hair, brows, the mouth's inside, deep shadows). The same swap is converted with
`--color none` too; the pixels of its inner face whose chroma is under 6 are the greys, and the figure is
the mean a/b distance those pixels move under the transfer. A transfer that shifts every pixel's hue
moves them by the whole difference between the two skins; the frame's light does not ask for that.

And the "shade tint": how far the swap's chroma at each lightness is from the source face's at the same
lightness. The inner face's pixels of each are cut into tenths by lightness (each face by its own), and the
figure is the mean a/b distance between the two faces' mean colour, tenth by tenth. A transfer that
matches each channel's spread alone (`rct`) leaves the drawn face's own relation of colour to shade: the
creases of a dark, warm skin stay warmer than its cheeks and read as orange streaks on a pale one.

    python bench/paste_color.py --model /tmp/dualface-quality/quality_lite128_gan_recolor_60m --colors rct skin
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from common import hardware, save_still, write_result
from quality import CACHE, DIRECTIONS, FIELDS, ROOT, close_ups, dualface, headline

GREY = 6.0  # chroma (a/b length) under which a pixel of the drawn face counts as grey; skin is 20-35
INNER = np.s_[48:172, 38:154]  # of a 192 px close-up: brows to chin, cheek to cheek


def ab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image[INNER].astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[..., 1:].reshape(-1, 2)


def grey_tint(untouched: list[np.ndarray], recoloured: list[np.ndarray]) -> tuple[float, float]:
    """(mean a/b distance the grey pixels of the `--color none` close-ups move, their share of the inner face)."""
    moved, share = [], []
    for before, after in zip(map(ab, untouched), map(ab, recoloured), strict=True):
        grey = np.hypot(before[:, 0], before[:, 1]) < GREY
        share.append(grey.mean())
        if grey.any():
            moved.append(np.linalg.norm(after[grey] - before[grey], axis=1).mean())
    return (float(np.mean(moved)) if moved else 0.0), float(np.mean(share))


def shade_tint(sources: list[np.ndarray], swaps: list[np.ndarray], tenths: int = 10) -> float:
    """Mean a/b distance between each swap's and its source's inner face, lightness tenth by lightness tenth."""
    moved = []
    for source, swap in zip(sources, swaps, strict=True):
        means = []
        for image in (source, swap):
            lab = cv2.cvtColor(image[INNER].astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
            order = np.argsort(lab[:, 0], kind="stable")
            means.append(np.array([part[:, 1:].mean(0) for part in np.array_split(lab[order], tenths)]))
        moved.append(np.linalg.norm(means[0] - means[1], axis=1).mean())
    return float(np.mean(moved))


def transfer_stills(colors: list[str], out: Path) -> None:
    """One training face of each person recoloured to the other's with each transfer, no model involved:
    rows s1 -> Obama's colours and the reverse; columns the face, each transfer, the reference."""
    from dualface.color import transfer_color

    def face(name: str) -> np.ndarray:  # a third of the way into the set: any face would do
        paths = sorted((CACHE / "faces" / name).glob("*.png"))
        return np.asarray(Image.open(paths[len(paths) // 3]).convert("RGB")).astype(np.float32) / 255

    rows = []
    for image, reference in ((face("s1"), face("obama")), (face("obama"), face("s1"))):
        mask = np.zeros(image.shape[:2], np.float32)
        h, w = mask.shape
        mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1  # the middle half of the crop: skin, eyes, nose, mouth
        rows.append(np.hstack([image, *(transfer_color(c, image, reference, mask) for c in colors), reference]))
    still = (np.vstack(rows) * 255).round().astype(np.uint8)
    save_still(still, out, "colour transfer stills: each face, recoloured by each transfer, the reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder bench/quality.py trained")
    parser.add_argument("--colors", nargs="+", default=["rct", "skin"])
    parser.add_argument("--name", default="paste_color_skin")
    parser.add_argument("--frames", type=int, default=15, help="frames the grey tint is measured on")
    args = parser.parse_args()
    if not any(args.model.glob("*.safetensors")):
        parser.error(f"{args.model}: no checkpoint there, not a model folder")
    out = CACHE / args.name
    out.mkdir(parents=True, exist_ok=True)
    transfer_stills(args.colors, ROOT / "docs" / f"{args.name}-transfers.png")
    figures: dict[str, dict] = {}
    for direction, (src, _, tgt, _, held_out) in DIRECTIONS.items():
        figures[direction], swaps, frames = {}, [], 0
        for color in ["none", *args.colors]:
            swaps.append(out / f"{direction}-{color}.mp4")
            dualface("convert", str(held_out), "-m", str(args.model), "--to", tgt, "-o", str(swaps[-1]),
                     "--checkpoint", "last", "--color", color, "--no-progress")  # fmt: skip
            if color == "none":
                continue
            report = out / f"{direction}-{color}"
            dualface("evaluate", str(held_out), str(swaps[-1]), "-m", str(args.model), "--to", tgt, "--from", src,
                     "--target-faces", str(CACHE / "faces" / tgt), "-o", str(report), "--embed-frames", "50",
                     "--no-progress")  # fmt: skip
            data = json.loads((report / "report.json").read_text())
            frames = data["frames"]
            figures[direction][color] = {"step": data["step"], **headline(data["scores"])}
        tiles = close_ups(held_out, swaps, frames, args.frames)
        for i, color in enumerate(args.colors, start=2):
            tint, share = grey_tint([t[1] for t in tiles], [t[i] for t in tiles])
            shade = shade_tint([t[0] for t in tiles], [t[i] for t in tiles])
            figures[direction][color] |= {
                "grey_tint": round(tint, 2),
                "grey_share": round(share, 3),
                "shade_tint": round(shade, 2),
            }
        picked = tiles[:: max(1, len(tiles) // 5)][:5]
        rows = [np.hstack([t[i] for t in picked]) for i in (0, *range(2, len(swaps) + 1))]
        still = ROOT / "docs" / f"{args.name}-{direction}.png"
        save_still(np.vstack(rows), still, f"bench stills: source, then a swap per --color ({', '.join(args.colors)})")

    print(f"\n| direction | --color | {' | '.join(FIELDS)} | grey tint | grey share | shade tint |")
    print("| --- | --- |" + " --- |" * (len(FIELDS) + 3))
    for direction, by_color in figures.items():
        for color, f in by_color.items():
            cells = ["-" if f[k] is None else f"{f[k]:.3f}" for k in (*FIELDS, "grey_tint", "grey_share", "shade_tint")]
            print(f"| {direction} | {color} | " + " | ".join(cells) + " |")
    write_result(args.name, {
        "what": f"one model ({args.model.name}) converted with each --color, each evaluated",
        "command": "python bench/paste_color.py " + shlex.join(sys.argv[1:]),
        "grey_tint": f"mean a/b distance that the inner face's grey pixels (chroma < {GREY:g} in the same swap "
                     "converted with --color none) move under the transfer, over frames; grey_share: their share; "
                     "shade_tint: mean a/b distance between the swap's inner face and the source's, tenth of "
                     "lightness by tenth, over frames",
        "stills": [f"docs/{args.name}-{d}.png (rows: source, then {', '.join(args.colors)})" for d in figures]
        + [f"docs/{args.name}-transfers.png (s1 and Obama: the face, {', '.join(args.colors)}, the other)"],
        "directions": figures,
        "hardware": hardware(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
