"""What a swap would score if its decoder were perfect: the target's own real faces, pasted in.

For each direction of bench/quality.py, every frame of the held-out clip gets the target's training face
whose pose and expression are nearest (its 68 landmarks in mean-face units), cut to `lite128`'s crop (128 px,
the face across 0.9 of it) as training cuts it, and pasted through convert's own compositing (the landmark
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
from pathlib import Path

import numpy as np

from common import hardware, write_result
from dualface.align import align_matrix, cut, to_mean_face, transform_points
from dualface.alignments import read_face_png, read_face_record
from dualface.composite import Face, composite, model_input
from dualface.config import PasteConfig
from dualface.data import face_files, mean_embedding
from dualface.evaluate import TargetFaces, evaluate_video
from dualface.faces import largest, tracked
from dualface.model import ModelConfig
from dualface.track import TrackerConfig
from dualface.video import probe_video, read_video
from dualface.writer import video_writer
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


def shape(landmarks: np.ndarray) -> np.ndarray:
    """68 landmarks in mean-face units, flat: pose and expression (and the person's face shape)."""
    return transform_points(landmarks, to_mean_face(landmarks)).ravel()


def target_shapes(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The target's training faces and their landmarks (face-image pixels) as mean-face shapes."""
    files = face_files(folder)
    points = []
    for path in files:
        record = read_face_record(path)
        points.append(transform_points(np.array(record["landmarks"], np.float32), np.array(record["matrix"])))
    return files, np.stack([shape(p) for p in points])


def paste_nearest(source: Path, target: Path, out: Path, cfg: ModelConfig, paste: PasteConfig) -> int:
    """`source` with every face replaced by the target's nearest real face; the count of faces replaced."""
    files, shapes = target_shapes(target)
    cache: dict[int, np.ndarray] = {}
    states: dict = {}
    replaced = 0
    with video_writer(out, like=source, kind="perfect-decoder ceiling") as write:
        for _, frame, found in tracked(read_video(source), TrackerConfig(embed_every=0), probe_video(source).fps):
            face = largest(found)
            if face is None:
                write(frame)
                continue
            nearest = int(np.argmin(((shapes - shape(face.raw)) ** 2).sum(1)))
            if nearest not in cache:
                image, record = read_face_png(files[nearest])
                landmarks = transform_points(np.array(record["landmarks"], np.float32), np.array(record["matrix"]))
                drawn = cut(image, align_matrix(landmarks, cfg.size, cfg.coverage, cfg.centering), cfg.size)
                cache[nearest] = drawn.astype(np.float32) / 255
            matrix, crop = model_input(frame, face.landmarks, cfg.size, cfg.coverage, cfg.centering)
            swapped = Face(face.track, face.landmarks, matrix, crop, swapped=cache[nearest])
            write(composite(frame, [swapped], paste, cfg.size, states))
            replaced += 1
    return replaced


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
            replaced = paste_nearest(held_out, face[tgt], video, cfg, PasteConfig(color=color))
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
