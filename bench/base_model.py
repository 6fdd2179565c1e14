"""A generic base model (DeepFaceLab's "pretrain"): the shared encoder and two decoders trained on every face
the project has (all GRID speakers, the White House clips), so a new pair starts from a model that can
already draw a face (`dualface train --init models/base-<preset>.safetensors`).

    python bench/base_model.py --minutes 30 --preset lite128

The held-out recordings (GRID's swau8n, the White House's obama_01) are left out. s1, with 79 clips, is
thinned to 1,500 faces so that no one person dominates. Faces are extracted into --cache (shared with
bench/quality.py); the weights are written in fp16 to models/base-<preset>.safetensors, the recipe into its
metadata and bench/results/base_model.json.
"""

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import hardware, write_result
from quality import CACHE, HELD_OUT, SHARED, dualface

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {  # name: (clips, most faces taken)
    "s1": ("grid/s1/*.mpg", 1500),
    "obama": ("whitehouse/obama_0[2-7].mp4", None),
    "speakers": ("grid/speakers/*.mpg", None),
    **{f"more-{p.name}": (f"grid/more/{p.name}/*.mpg", None) for p in sorted((SHARED / "grid/more").glob("s*"))},
}


def pool(cache: Path) -> Path:
    """One folder of hard links to every identity's faces (names prefixed, so clips never collide)."""
    folder = cache / "faces" / "pool"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, (pattern, most) in SOURCES.items():
        faces = cache / "faces" / name
        if not (faces / ".complete").exists():
            clips = [p for p in sorted(SHARED.glob(pattern)) if p.stem not in HELD_OUT]
            dualface("extract", *map(str, clips), "-o", str(faces), "--no-progress", check=False)
            (faces / ".complete").touch()
        files = sorted(faces.glob("*.png"))
        if most and len(files) > most:
            files = [files[i] for i in np.linspace(0, len(files) - 1, most).round().astype(int)]
        for f in files:
            link = folder / f"{name}-{f.name}"
            if not link.exists():
                link.hardlink_to(f)
    (folder / ".complete").touch()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--preset", default="lite128")
    parser.add_argument("--cache", type=Path, default=CACHE)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    faces = pool(args.cache)
    model = args.cache / f"base-{args.preset}"
    subprocess.run(["rm", "-rf", str(model)], check=True)
    started = time.perf_counter()
    train = ["train", str(faces), str(faces), "--name", "generic-a", "--name", "generic-b", "-m", str(model)]
    dualface(*train, "--preset", args.preset, "--time", f"{args.minutes * 60:.0f}s", "--seed", "0", "--no-progress",
             *extra)  # fmt: skip
    minutes = (time.perf_counter() - started) / 60
    from dualface.checkpoint import export_weights, latest_checkpoint, load_checkpoint

    last = latest_checkpoint(model)
    step = load_checkpoint(last).step
    out = ROOT / "models" / f"base-{args.preset}.safetensors"
    command = "python bench/base_model.py " + shlex.join(sys.argv[1:])
    recipe = {
        "command": command,
        "faces": len(list(faces.glob("*.png"))),
        "sources": {k: v[0] for k, v in SOURCES.items()},
        "held_out": sorted(HELD_OUT),
        "minutes": round(minutes, 1),
        "step": step,
        "machine": hardware(),
    }
    export_weights(last, out, {"base_model": recipe})
    print(f"{out}: step {step} after {minutes:.1f} min on {recipe['faces']} faces")
    write_result("base_model", {**recipe, "file": str(out.relative_to(ROOT)), "bytes": out.stat().st_size})


if __name__ == "__main__":
    main()
