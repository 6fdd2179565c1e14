"""Why the mouth into s1 stalls: how wide each person opens their mouth in the faces a decoder learns from,
and how far a swap's mouth follows its source's as two readers see it, on the held-out recordings.

1. **Coverage.** A decoder draws the mouths it was shown. For each direction, the mouth opening (lip gap over
   mouth width, `landmarks.mouth_opening`) of the held-out source's faces against the target's training
   faces: percentiles, and the share of source frames that open wider than the target's 99th percentile.
2. **Two readers of a trained model's swaps** (with `--model RUN`, a quality run in the cache): the held-out
   faces, cut at the model's crop, drawn as the target, and the swap crops' mouth opening read (a) by the
   evaluation's drawn-face measure (dlib's 68 points fitted inside the fixed central region,
   `metrics.drawn_landmarks`) and (b) by the run's expression judge where it trained one
   (`--expression-weight`). Each against the source's landmarks: concordance (what `evaluate` scores), r and
   amplitude (the swap's spread over the source's). Read on crops, no paste: what the decoder drew.
   Beside them, two readings that locate a shortfall: the swaps of the source's own *training* faces (what
   the decoder does with codes it was trained beside), and of the held-out faces recoloured (rct) to the
   training faces' colours (how much of the gap between those two is the new recording's light).

    python bench/mouth.py                                        # coverage only
    python bench/mouth.py --model quality_..._expr01_60m         # and that run's swaps
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from common import hardware, write_result
from dualface.align import to_mean_face
from dualface.alignments import read_face_record
from dualface.augment import recolor
from dualface.checkpoint import load_checkpoint, model_from, resolve_checkpoint
from dualface.config import AugmentConfig
from dualface.data import FaceSet, center_crop, face_files, load_face_set
from dualface.expression import JUDGE_FILE, ExpressionJudge
from dualface.landmarks import mouth_opening
from dualface.masks import MASKS
from dualface.metrics import concordance, drawn_landmarks
from dualface.model import Autoencoder, as_input, as_uint8, draw
from quality import CACHE, DIRECTIONS, faces

PERCENTILES = (5, 50, 90, 95, 99, 100)
READERS = ("dlib", "dlib_on_training_faces", "dlib_recoloured_to_training_faces", "judge", "judge_on_the_real_faces")


def held_out_faces(clip: Path) -> Path:
    """The held-out clip's faces, extracted once into the cache (never a training folder)."""
    folder = CACHE / "faces" / f"held-out-{clip.stem}"
    if not any(folder.glob("*.png")):
        subprocess.run([sys.executable, "-m", "dualface", "extract", str(clip), "-o", str(folder), "--no-progress"],
                       check=True)  # fmt: skip
    return folder


def openings_of(folder: Path) -> np.ndarray:
    """Mouth opening of every extracted face in `folder`, from its stored landmarks."""
    return np.array([mouth_opening(np.asarray(read_face_record(p)["landmarks"])) for p in face_files(folder)])


def spread(openings: np.ndarray) -> list[float]:
    return np.percentile(openings, PERCENTILES).round(3).tolist()


def agreement(source: np.ndarray, swap: np.ndarray) -> dict[str, float]:
    return {
        "concordance": round(float(concordance(source, swap)), 3),
        "r": round(float(np.corrcoef(source, swap)[0, 1]), 3),
        "amplitude": round(float(swap.std() / source.std()), 3),
    }


def judge_of(run: Path) -> ExpressionJudge | None:
    """The run's expression judge, where it trained one (saved as the critics are: `gan.save_critic`)."""
    if not (run / JUDGE_FILE).exists():
        return None
    judge = ExpressionJudge()
    judge.load_state_dict(load_checkpoint(run / JUDGE_FILE, model=False).model)
    return judge.eval()


def followed(model: Autoencoder, crops: np.ndarray, points: np.ndarray, target: str) -> tuple[dict, np.ndarray]:
    """How far the crops drawn as `target` follow their landmarks' mouths, by the evaluation's drawn-face
    measure (dlib, placed by the source's landmarks); and the swaps."""
    swaps = as_uint8(draw(model, crops, target)[0])
    source = np.array([mouth_opening(p) for p in points])
    read = np.array([mouth_opening(drawn_landmarks(s, to_mean_face(p))) for s, p in zip(swaps, points, strict=True)])
    return agreement(source, read), swaps


def recoloured(crops: np.ndarray, points: np.ndarray, like: FaceSet, size: int) -> np.ndarray:
    """Each crop recoloured (rct, inside its face mask) to a random face of `like`: the held-out faces in the
    training faces' light and colour, their shapes untouched."""
    rng, cfg = np.random.default_rng(0), AugmentConfig()
    pairs = zip(crops, points, strict=True)
    return np.stack([recolor(c, MASKS[cfg.mask](p, size), [like], rng, cfg, "rct") for c, p in pairs])


def readers(run: Path, direction: str, folder: Path) -> dict:
    """How far `run`'s swaps (last checkpoint) follow their sources' mouths: the held-out faces in `folder`
    read by dlib and by the run's judge; the source's own training faces (300) and the held-out faces
    recoloured to them, read by dlib. The two last tell a new recording's code from the decoder's reach."""
    src, src_clips, tgt, _, _ = DIRECTIONS[direction]
    model = model_from(load_checkpoint(resolve_checkpoint(run, "last")))
    size = model.config.size
    held = load_face_set(folder, model.config)
    crops, points = center_crop(held.faces, held.landmarks, size)
    trained = load_face_set(faces(CACHE, src, src_clips), model.config, limit=300)
    row: dict = {"faces": len(crops)}
    row["dlib"], swaps = followed(model, crops, points, tgt)
    row["dlib_on_training_faces"], _ = followed(model, *center_crop(trained.faces, trained.landmarks, size), tgt)
    row["dlib_recoloured_to_training_faces"], _ = followed(model, recoloured(crops, points, trained, size), points, tgt)
    judge = judge_of(run)
    if judge is not None:
        source = np.array([mouth_opening(p) for p in points])
        with torch.no_grad():
            read = judge(as_input(swaps, "cpu"))[:, 0].numpy()
            real = judge(as_input(crops, "cpu"))[:, 0].numpy()
        row["judge"] = agreement(source, read)
        row["judge_on_the_real_faces"] = agreement(source, real)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="a quality run in the cache (repeatable)")
    args = parser.parse_args()
    torch.manual_seed(0)
    result: dict = {"coverage": {}, "readers": {}}
    print(f"{'direction':10s} {'faces':>14s} " + " ".join(f"p{p:<5d}" for p in PERCENTILES) + "  wider than target p99")
    for direction, (src, _, tgt, tgt_clips, clip) in DIRECTIONS.items():
        held = held_out_faces(clip)
        source, target = openings_of(held), openings_of(faces(CACHE, tgt, tgt_clips))
        p99 = np.percentile(target, 99)
        row = {
            "source": {"clip": clip.name, "faces": len(source), "percentiles": spread(source)},
            "target": {"identity": tgt, "faces": len(target), "percentiles": spread(target)},
            "source_wider_than_target_p99": round(float((source > p99).mean()), 3),
        }
        result["coverage"][direction] = row
        for who in ("source", "target"):
            name = f"{src} ({clip.stem})" if who == "source" else tgt
            cells = " ".join(f"{v:<6.3f}" for v in row[who]["percentiles"])
            wider = row["source_wider_than_target_p99"] if who == "source" else ""
            print(f"{direction:10s} {name:>14s} {cells}", wider)
        for run in args.model:
            readings = readers(CACHE / run, direction, held)
            result["readers"].setdefault(run, {})[direction] = readings
            for reader in READERS:
                if reader in readings:
                    a = readings[reader]
                    print(f"  {run[-40:]:40s} {direction:9s} {reader:34s} concordance {a['concordance']:.2f}  "
                          f"r {a['r']:.2f}  amplitude {a['amplitude']:.2f}")  # fmt: skip
    write_result("mouth", {"command": "python bench/mouth.py " + " ".join(sys.argv[1:]), **result,
                           "hardware": hardware()})  # fmt: skip


if __name__ == "__main__":
    main()
