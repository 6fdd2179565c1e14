"""What a swap would score if its decoder were perfect: the target's own real faces, pasted in.

For each direction of bench/quality.py, every frame of the held-out clip gets the target's training face
whose pose and expression are nearest (its 68 landmarks in mean-face units), cut to `lite128`'s crop (128 px,
the face across 0.9 of it) as training cuts it, and pasted through convert's own compositing
(`dualface.real_faces`, which `evaluate` also runs beside every swap) (the landmark
mask, the colour transfer, the feather). `dualface evaluate`'s measures of that video bound what a trained
model pasted this way can reach: a decoder that drew the target perfectly, at the pose and expression
nearest the source's that the target ever showed, would score this. The nearest face is a retrieval, so
the mouth follows the source only as closely as the target's own faces allow; the identity gap and the
landmark error are the figures this bench is for.

The demo's pair (GRID s1's held-out swau8n into brbk7n, whose 75 faces from one clip are both what the
demo trains on and its reference) is measured the same way.

    python bench/ceiling.py          # writes bench/results/ceiling.json and docs/ceiling-*.png

With --variants, each string is a paste (convert's --mask, --erode, --feather, --color, --no-hair) and the
crop the real faces are cut to (--coverage): how far a paste would have to reach for a perfect decoder to
pass a bar. A grown mask takes in the target's jaw and hairline, a lower coverage more of its head. (A variant
that starts with "--" takes a leading space, or the bench's own parser reads it.) Stills: face close-ups in
docs/<name>-<direction>.png, rows the source and then one per variant.

    python bench/ceiling.py --name ceiling_reach --variants "" " --erode -4" " --erode -10" \
        " --coverage 0.75" " --coverage 0.75 --erode -6" " --coverage 0.6 --erode -15"
"""

import argparse
import dataclasses
import json
import shlex
import sys
import time

import numpy as np

from common import hardware, save_still, write_result
from dualface.config import PasteConfig
from dualface.data import face_files, mean_embedding
from dualface.evaluate import TargetFaces, evaluate_video
from dualface.faces import largest_faces
from dualface.model import ModelConfig
from dualface.real_faces import paste_real_faces
from quality import BAR, CACHE, DIRECTIONS, ROOT, SHARED, close_ups, faces, stills

# direction: (source identity, where its faces' clips are, target identity, where its are, the held-out clip),
# each "where" a (folder, glob pattern) as quality.faces takes it
PAIRS = {
    **{name: (src, (SHARED, a), tgt, (SHARED, b), held) for name, (src, a, tgt, b, held) in DIRECTIONS.items()},
    "demo s1-brbk7n": (
        "s1",
        (SHARED, "grid/s1/*.mpg"),
        "brbk7n",
        (ROOT, "data/grid/speakers/brbk7n.mpg"),
        ROOT / "data/grid/s1-held-out/swau8n.mpg",
    ),
}
# convert's default colour transfer, and none: how much of the gap the recolouring costs
COLORS = ("--color rct", "--color none")
FIELDS = ("identity_transfer", "identity_gap", "mouth", "eyes", "landmark_error", "sharpness")


def paste_variant(variant: str, cfg: ModelConfig) -> tuple[ModelConfig, PasteConfig]:
    """A variant string's crop and paste: `--coverage` for the crop, convert's paste options for the rest."""
    parser = argparse.ArgumentParser(prog=repr(variant), exit_on_error=False)
    parser.add_argument("--coverage", type=float, default=cfg.coverage)
    for name in ("mask", "color"):
        parser.add_argument(f"--{name}")
    for name in ("erode", "feather"):
        parser.add_argument(f"--{name}", type=float)
    parser.add_argument("--no-hair", dest="hair", action="store_false", default=None)
    options = vars(parser.parse_args(shlex.split(variant)))
    coverage = options.pop("coverage")
    paste = PasteConfig(**{k: v for k, v in options.items() if v is not None})
    return dataclasses.replace(cfg, coverage=coverage), paste


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument(
        "--variants", nargs="+", default=list(COLORS), help='paste options, one string each ("": defaults)'
    )
    parser.add_argument("--name", default="ceiling", help="bench/results/<name>.json")
    args = parser.parse_args()
    preset = ModelConfig.from_preset("lite128")
    pairs = {name: PAIRS[name] for name in args.pairs}
    clips = {src: a for src, a, *_ in pairs.values()} | {tgt: b for _, _, tgt, b, _ in pairs.values()}
    face = {name: faces(CACHE, name, pattern, root) for name, (root, pattern) in clips.items()}
    embeddings = {name: mean_embedding(face_files(folder)) for name, folder in face.items()}
    results: dict = {}
    for direction, (src, _, tgt, _, held_out) in pairs.items():
        reference, videos, found = TargetFaces.load(face[tgt]), [], largest_faces(held_out)
        for variant in args.variants:
            cfg, paste = paste_variant(variant, preset)
            key = f"{direction} {variant}".strip()
            started = time.perf_counter()
            video = CACHE / "ceiling" / f"{args.name}-{key.replace(' ', '_')}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            replaced = paste_real_faces(held_out, face[tgt], video, cfg, paste, found=found)
            videos.append(video)
            evaluation, *_ = evaluate_video(
                held_out, video, embeddings, tgt, src, reference=reference, embed_frames=50, faces=found
            )
            scores = {k: evaluation.scores[k].value for k in FIELDS if k in evaluation.scores}
            results[key] = {
                "faces_replaced": replaced,
                **{k: None if v is None else round(float(v), 4) for k, v in scores.items()},
                "mean_to_target": round(evaluation.mean_to_target, 4),
                "target_to_itself": round(evaluation.target_to_itself, 4),
                "minutes": round((time.perf_counter() - started) / 60, 2),
            }
            print(key, json.dumps(results[key]))
        still = ROOT / "docs" / f"{args.name}-{direction.replace(' ', '-')}.png"
        if args.variants == list(COLORS):  # source | the default paste
            stills(held_out, videos[0], {"frames": evaluation.frames}, still)
        else:  # face close-ups, rows: the source, then one per variant
            tiles = close_ups(held_out, videos, evaluation.frames, 5)
            grid = np.vstack([np.hstack([t[i] for t in tiles]) for i in range(len(videos) + 1)])
            save_still(grid, still, "ceiling stills")
    write_result(
        args.name,
        {
            "what": "the target's nearest real training face (landmarks in mean-face units) cut to lite128's crop "
            "(128 px, coverage 0.9 unless the variant says) and pasted by convert's compositing; measured by "
            "dualface evaluate",
            "command": "python bench/ceiling.py " + shlex.join(sys.argv[1:]),
            "bar": BAR,
            "results": results,
            "hardware": hardware(),
        },
    )
    print(f"| paste | {' | '.join(FIELDS)} |")
    for name, row in results.items():
        cells = ["-" if row.get(k) is None else f"{row[k]:.3f}" for k in FIELDS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
