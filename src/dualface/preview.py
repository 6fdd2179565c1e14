"""Pictures of training: the preview grid (input, reconstruction, swaps) and the loss curve."""

import csv
import io
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt
import numpy as np
import torch

from dualface.files import write_output
from dualface.watermark import embed_watermark
from dualface.writer import write_image


def to_images(batch: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) floats in [0, 1] -> (B, S, S, 3) uint8."""
    return (batch.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def preview_grid(model: torch.nn.Module, faces: dict[str, torch.Tensor], scale: int = 2) -> np.ndarray:
    """One row per face; columns: the face, its reconstruction, then its swap into every other identity.

    Args:
        faces: identity -> (K, 3, S, S) unwarped faces in [0, 1].
    """
    names = list(faces)
    rows = []
    for name in names:
        columns = [faces[name]]
        for target in [name, *[n for n in names if n != name]]:
            columns.append(model({target: faces[name]})[target].rgb)
        tiles = [to_images(c) for c in columns]  # each (K, S, S, 3)
        rows.extend(np.concatenate([t[k] for t in tiles], axis=1) for k in range(len(faces[name])))
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    size = faces[names[0]].shape[-1] * scale
    header = np.full((22, grid.shape[1], 3), 255, np.uint8)
    labels = ["face", "itself", *[f"as {n}" for n in names[1:]]]
    for i, label in enumerate(labels):
        text = label if i < 2 else "swaps"
        cv2.putText(header, text, (i * size + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, grid], axis=0)


def save_png(path: Path, image: np.ndarray, kind: str) -> None:
    """A picture that shows drawn faces, labelled synthetic as every output is: the text chunk, and the
    invisible mark where it is large enough to carry one (`dualface verify` reads both)."""
    write_image(path, embed_watermark(image), kind)


def plot_loss_curve(log_csv: Path, out: Path) -> None:
    """Loss per identity against step, from the training CSV."""
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [k[len("loss_") :] for k in rows[0] if k.startswith("loss_")] if rows else []
    rows = [r for r in rows if _complete(r, names)]  # a run killed mid-row leaves its last one short
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name in names:
        values = np.array([float(r[f"loss_{name}"]) for r in rows])
        ax.plot(steps, values, alpha=0.25, linewidth=0.8)
        window = max(1, len(values) // 50)
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=name, color=ax.lines[-1].get_color())
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("dualface training loss")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_output(out, buffer.getvalue())


def _complete(row: dict, names: list[str]) -> bool:
    try:
        int(row["step"])
        for name in names:
            float(row[f"loss_{name}"])
    except (KeyError, TypeError, ValueError):
        return False
    return True
