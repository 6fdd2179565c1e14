"""The paste's colour transfers side by side: one model trained by bench/quality.py, converted in both
directions with each `--color`, each swap evaluated, and the stills stacked (rows: the source, then one
per transfer) in docs/<name>-<direction>.png.

Beside the evaluation's figures, the "dark tint": how far (CIE76 over a and b) the mean colour of the
darkest 15% of the inner face (eye sockets, brows, nostrils, the mouth's inside) moves from the frame's
own. The swap draws another person in the frame's light, so these parts should keep the frame's dark
colours; a transfer that shifts every pixel's hue paints them with the difference between the two skins.

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

from common import hardware, write_result
from quality import CACHE, DIRECTIONS, FIELDS, ROOT, dualface

DARKEST = 0.15


def frame_pairs(source: Path, swap: Path, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(source, swap) face close-ups, aligned on the source's landmarks, at `count` frames over the clip."""
    from dualface.align import crop_matrix, to_mean_face
    from dualface.faces import largest, tracked
    from dualface.metrics import aligned_crop
    from dualface.track import TrackerConfig
    from dualface.video import probe_video, read_video

    wanted = set(np.linspace(0, probe_video(source).frame_count - 1, count + 2).round().astype(int)[1:-1].tolist())
    crop, pairs = crop_matrix(192, 0.8, "face"), []
    faces = tracked(read_video(source), TrackerConfig(embed_every=0), 25)
    for (index, frame, found), (_, swapped) in zip(faces, read_video(swap), strict=False):
        if index in wanted and (face := largest(found)):
            to_mean = to_mean_face(face.landmarks)
            pairs.append((aligned_crop(frame, to_mean, crop, 192), aligned_crop(swapped, to_mean, crop, 192)))
    return pairs


def dark_tint(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean over frames of the a/b distance between the darkest inner-face pixels' mean colours."""
    distances = []
    for pair in pairs:
        means = []
        for image in pair:
            inner = cv2.cvtColor(image[48:172, 38:154].astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)
            dark = inner[inner[:, 0] <= np.quantile(inner[:, 0], DARKEST)]
            means.append(dark[:, 1:].mean(0))
        distances.append(float(np.linalg.norm(means[0] - means[1])))
    return float(np.mean(distances))


def transfer_stills(colors: list[str], out: Path) -> None:
    """One training face of each person recoloured to the other's with each transfer, no model involved:
    rows s1 -> Obama's colours and the reverse; columns the face, each transfer, the reference."""
    from dualface.color import transfer_color

    def face(name: str, index: int) -> np.ndarray:
        path = sorted((CACHE / "faces" / name).glob("*.png"))[index]
        return np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255

    rows = []
    for image, reference in ((face("s1", 500), face("obama", 300)), (face("obama", 300), face("s1", 500))):
        mask = np.zeros(image.shape[:2], np.float32)
        h, w = mask.shape
        mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1  # the middle of the face: its skin, as the paste measures it
        rows.append(np.hstack([image, *(transfer_color(c, image, reference, mask) for c in colors), reference]))
    Image.fromarray((np.vstack(rows) * 255).round().astype(np.uint8)).save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder bench/quality.py trained")
    parser.add_argument("--colors", nargs="+", default=["rct", "skin"])
    parser.add_argument("--name", default="paste_color_skin")
    parser.add_argument("--frames", type=int, default=15, help="frames the dark tint is measured on")
    args = parser.parse_args()
    if not any(args.model.glob("*.safetensors")):
        parser.error(f"{args.model}: not a model folder")
    out = CACHE / args.name
    out.mkdir(parents=True, exist_ok=True)
    transfer_stills(args.colors, ROOT / "docs" / f"{args.name}-transfers.png")
    figures: dict[str, dict] = {}
    for direction, (src, _, tgt, _, held_out) in DIRECTIONS.items():
        figures[direction], rows = {}, []
        for color in args.colors:
            swap, report = out / f"{direction}-{color}.mp4", out / f"{direction}-{color}"
            dualface("convert", str(held_out), "-m", str(args.model), "--to", tgt, "-o", str(swap), "--checkpoint",
                     "last", "--color", color, "--no-progress")  # fmt: skip
            dualface("evaluate", str(held_out), str(swap), "-m", str(args.model), "--to", tgt, "--from", src,
                     "--target-faces", str(CACHE / "faces" / tgt), "-o", str(report), "--embed-frames", "50",
                     "--no-progress")  # fmt: skip
            data = json.loads((report / "report.json").read_text())
            scores = {k: v["normalised"] if k in ("mouth", "eyes") else v["value"] for k, v in data["scores"].items()
                      if k in FIELDS}  # fmt: skip
            pairs = frame_pairs(held_out, swap, args.frames)
            figures[direction][color] = {"step": data["step"], **scores, "dark_tint": round(dark_tint(pairs), 2)}
            if not rows:
                rows.append(np.hstack([p[0] for p in pairs[:: max(1, len(pairs) // 5)][:5]]))
            rows.append(np.hstack([p[1] for p in pairs[:: max(1, len(pairs) // 5)][:5]]))
        Image.fromarray(np.vstack(rows)).save(ROOT / "docs" / f"{args.name}-{direction}.png")

    print(f"\n| direction | --color | {' | '.join(FIELDS)} | dark tint |")
    print("| --- | --- |" + " --- |" * (len(FIELDS) + 1))
    for direction, by_color in figures.items():
        for color, f in by_color.items():
            cells = ["-" if f[k] is None else f"{f[k]:.3f}" for k in (*FIELDS, "dark_tint")]
            print(f"| {direction} | {color} | " + " | ".join(cells) + " |")
    write_result(args.name, {
        "what": f"one model ({args.model.name}) converted with each --color, each evaluated",
        "command": "python bench/paste_color.py " + shlex.join(sys.argv[1:]),
        "dark_tint": f"a/b distance (CIE76) between the mean colours of the darkest {DARKEST:.0%} of the inner face, "
                     "swap against source, averaged over frames",
        "stills": [f"docs/{args.name}-{d}.png (rows: source, then {', '.join(args.colors)})" for d in figures]
        + [f"docs/{args.name}-transfers.png (s1 and Obama: the face, {', '.join(args.colors)}, the other)"],
        "directions": figures,
        "hardware": hardware(),
    })  # fmt: skip


if __name__ == "__main__":
    main()
