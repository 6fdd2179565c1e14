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
"""

import json
import time

from common import hardware, write_result
from dualface.config import PasteConfig
from dualface.data import face_files, mean_embedding
from dualface.evaluate import TargetFaces, evaluate_video
from dualface.model import ModelConfig
from dualface.real_faces import paste_real_faces
from quality import BAR, CACHE, DIRECTIONS, ROOT, SHARED, faces, stills

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
COLORS = ("rct", "none")  # convert's default colour transfer, and none: how much of the gap the recolouring costs
FIELDS = ("identity_transfer", "identity_gap", "mouth", "eyes", "landmark_error", "sharpness")


def main() -> None:
    cfg = ModelConfig.from_preset("lite128")
    clips = {src: a for src, a, *_ in PAIRS.values()} | {tgt: b for _, _, tgt, b, _ in PAIRS.values()}
    face = {name: faces(CACHE, name, pattern, root) for name, (root, pattern) in clips.items()}
    embeddings = {name: mean_embedding(face_files(folder)) for name, folder in face.items()}
    results: dict = {}
    for direction, (src, _, tgt, _, held_out) in PAIRS.items():
        reference = TargetFaces.load(face[tgt])
        for color in COLORS:
            started = time.perf_counter()
            video = CACHE / "ceiling" / f"{direction.replace(' ', '-')}-{color}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            replaced = paste_real_faces(held_out, face[tgt], video, cfg, PasteConfig(color=color))
            evaluation, *_ = evaluate_video(held_out, video, embeddings, tgt, src, reference=reference, embed_frames=50)
            scores = {k: evaluation.scores[k].value for k in FIELDS if k in evaluation.scores}
            results[f"{direction} --color {color}"] = {
                "faces_replaced": replaced,
                **{k: None if v is None else round(float(v), 4) for k, v in scores.items()},
                "mean_to_target": round(evaluation.mean_to_target, 4),
                "target_to_itself": round(evaluation.target_to_itself, 4),
                "minutes": round((time.perf_counter() - started) / 60, 2),
            }
            if color == "rct":
                still = ROOT / "docs" / f"ceiling-{direction.replace(' ', '-')}.png"
                stills(held_out, video, {"frames": evaluation.frames}, still)
            print(direction, color, json.dumps(results[f"{direction} --color {color}"]))
    write_result(
        "ceiling",
        {
            "what": "the target's nearest real training face (landmarks in mean-face units) cut to lite128's crop "
            "(128 px, coverage 0.9) and pasted by convert's compositing; measured by dualface evaluate",
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
