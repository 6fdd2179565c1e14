"""What the benchmarks share: a description of the machine they ran on, and how they write stills."""

import json
import math
import os
import platform
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict:
    import torch

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def write_result(name: str, payload: dict) -> Path:
    """Write a benchmark's figures to bench/results/<name>.json (committed beside the table it printed)."""
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten to bench/results/{out.name}")
    return out


def save_still(image: np.ndarray, out: Path, kind: str) -> Path:
    """Write an RGB still (uint8) of drawn faces as every dualface output is: labelled synthetic in its PNG
    metadata (`kind` says what it shows) and carrying the invisible mark `dualface verify` reads. A still
    under the mark's MIN_SIDE on a side is enlarged first (as the evaluation report enlarges its strips)."""
    from PIL import Image

    from dualface.provenance import png_info
    from dualface.watermark import MIN_SIDE, embed_watermark

    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        scale = MIN_SIDE / min(height, width)
        size = (max(MIN_SIDE, math.ceil(width * scale)), max(MIN_SIDE, math.ceil(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    Image.fromarray(embed_watermark(np.ascontiguousarray(image))).save(out, "PNG", pnginfo=png_info(kind))
    return out
