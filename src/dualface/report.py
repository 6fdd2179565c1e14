"""The evaluation report: a JSON file for machines and one self-contained HTML page for people (plots and
frames inlined as PNG data, so the page can be mailed or archived on its own)."""

import base64
import html
import io
import json
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from dualface import __version__
from dualface.evaluate import VideoEvaluation
from dualface.files import atomic_write_bytes, ensure_writable_dir
from dualface.identity import SAME_PERSON
from dualface.provenance import SYNTHETIC_NOTICE

TARGETS = {"identity_transfer": 0.8, "mouth_r": 0.5, "flicker_ratio": 1.2}  # what the project aims for


def _png(figure_or_image) -> str:
    buffer = io.BytesIO()
    if isinstance(figure_or_image, np.ndarray):
        Image.fromarray(figure_or_image).save(buffer, "PNG")
    else:
        figure_or_image.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure_or_image)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plots(ev: VideoEvaluation) -> list[tuple[str, str]]:
    frames = [s.index for s in ev.per_frame]
    plots = []
    embedded = [s for s in ev.per_frame if s.to_target is not None]
    if embedded:
        fig, ax = plt.subplots(figsize=(8, 2.6))
        ax.plot([s.index for s in embedded], [s.to_target for s in embedded], ".-", label=f"to {ev.target}")
        if any(s.to_source is not None for s in embedded):
            ax.plot(
                [s.index for s in embedded], [s.to_source for s in embedded], ".-", label=f"to {ev.source_identity}"
            )
        ax.axhline(SAME_PERSON, color="grey", ls="--", lw=1, label="same person below")
        ax.set(xlabel="frame", ylabel="embedding distance", title="Whose face is it? (dlib identity)")
        ax.legend(loc="best", fontsize=8)
        plots.append(("Identity distance per frame", _png(fig)))
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True)
    for ax, key, title in ((axes[0], "mouth", "mouth opening"), (axes[1], "eyes", "eye opening")):
        values = np.array([getattr(s, key) for s in ev.per_frame])
        ax.plot(frames, values[:, 0], label="source", lw=1.2)
        ax.plot(frames, values[:, 1], label="output", lw=1.2)
        ax.set(ylabel=title)
        ax.legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"Does the output follow the source? mouth r = {ev.mouth_r:.2f}, eyes r = {ev.eyes_r:.2f}")
    axes[1].set_xlabel("frame")
    plots.append(("Expression over time", _png(fig)))
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
    axes[0].plot(frames, [s.landmark_error for s in ev.per_frame], lw=1.2)
    axes[0].set(xlabel="frame", ylabel="error / inter-ocular", title="Landmark error")
    changes = np.array(ev.changes)
    axes[1].plot(changes[:, 0], changes[:, 1], label="source", lw=1.2)
    axes[1].plot(changes[:, 0], changes[:, 2], label="output", lw=1.2)
    axes[1].set(xlabel="frame", ylabel="change in face, levels", title=f"Flicker: ratio {ev.flicker_ratio:.2f}")
    axes[1].legend(fontsize=8)
    plots.append(("Landmark error and flicker", _png(fig)))
    return plots


def _strip(strip: list[tuple[int, np.ndarray, np.ndarray]], height: int = 180) -> str:
    columns = []
    for _, source, output in strip:
        scale = height / source.shape[0]
        size = (round(source.shape[1] * scale), height)
        pair = [np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in (source, output)]
        columns.append(np.concatenate(pair, 0))
    return _png(np.concatenate(columns, 1))


def _row(name: str, value, target: str = "", good: bool | None = None) -> str:
    mark = "" if good is None else (" class='ok'" if good else " class='bad'")
    return f"<tr><td>{name}</td><td{mark}>{value}</td><td>{target}</td></tr>"


def write_report(ev: VideoEvaluation, strip: list, folder: Path) -> tuple[Path, Path]:
    """report.json (everything, per frame included) and report.html in `folder`."""
    folder = ensure_writable_dir(Path(folder))
    data = {"tool": f"dualface {__version__}", **ev.headline(), "per_frame": [asdict(s) for s in ev.per_frame]}
    json_path, html_path = folder / "report.json", folder / "report.html"
    atomic_write_bytes(json_path, (json.dumps(data, indent=1) + "\n").encode(), fsync=False)

    transfer = "n/a" if ev.identity_transfer is None else f"{ev.identity_transfer:.0%}"
    rows = [
        _row(
            "Identity transfer (frames closer to the target than to the source identity)"
            if ev.source_identity
            else f"Identity transfer (frames within {SAME_PERSON} of the target: no source identity given)",
            transfer,
            ">= 80%",
            None if ev.identity_transfer is None else ev.identity_transfer >= TARGETS["identity_transfer"],
        ),
        _row(f"Mean embedding distance to {ev.target}", _fmt(ev.mean_to_target), f"< {SAME_PERSON}: same person"),
        *(
            [_row(f"Mean embedding distance to {ev.source_identity}", _fmt(ev.mean_to_source), "larger is better")]
            if ev.source_identity
            else []
        ),
        _row("Mouth opening, source vs output (Pearson r)", f"{ev.mouth_r:.2f}", ">= 0.5", ev.mouth_r >= 0.5),
        _row("Eye opening, source vs output (Pearson r)", f"{ev.eyes_r:.2f}", "higher is better"),
        _row("Landmark error / inter-ocular distance", f"{ev.landmark_error:.3f}", "0 = same shape"),
        _row(
            "Head pose error, degrees (yaw / pitch / roll)",
            " / ".join(f"{ev.pose_error[k]:.1f}" for k in ("yaw", "pitch", "roll")),
            "lower is better",
        ),
        _row("Flicker, output / source", f"{ev.flicker_ratio:.2f}", "<= 1.2", ev.flicker_ratio <= 1.2),
    ]
    for name, quality in ev.reconstruction.items():
        rows.append(
            _row(
                f"Reconstruction of {name} ({quality['faces']} held-out faces): SSIM / PSNR",
                f"{quality['ssim']:.3f} / {quality['psnr']:.1f} dB",
                "higher is better",
            )
        )
    figures = "".join(f"<h2>{html.escape(title)}</h2><img src='{src}'>" for title, src in _plots(ev))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>dualface evaluation</title>
<meta name="generator" content="dualface {__version__}"><meta name="description" content="{SYNTHETIC_NOTICE}">
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td{{border-bottom:1px solid #ddd;padding:4px 10px}}
.ok{{color:#070;font-weight:bold}}.bad{{color:#b00;font-weight:bold}}img{{max-width:100%}}</style></head><body>
<h1>dualface evaluation</h1>
<p>{html.escape(ev.output)}: {html.escape(ev.source)} swapped into <b>{html.escape(ev.target)}</b>;
{ev.frames_scored} of {ev.frames} frames had a face. <i>{SYNTHETIC_NOTICE}</i></p>
<table><tr><th>measure</th><th>value</th><th>aim</th></tr>{"".join(rows)}</table>
<h2>Source (top) and output (bottom)</h2><img src='{_strip(strip)}'>
{figures}
<p>Identity: dlib's 128-d face embeddings against each identity's mean embedding from training. Expression:
68 dlib landmarks found on the output where the source face was. Flicker: mean absolute frame-to-frame
change inside the source face's hull. Made by dualface {__version__}.</p>
</body></html>
"""
    atomic_write_bytes(html_path, page.encode(), fsync=False)
    return json_path, html_path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
