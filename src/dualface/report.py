"""The evaluation report: a JSON file for machines and one self-contained HTML page for people (plots and
frames inlined as PNG data, so the page can be mailed or archived on its own)."""

import base64
import html
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from dualface import __version__
from dualface.config import SAME_PERSON
from dualface.files import ensure_writable_dir, write_output
from dualface.metrics import METRICS, Score, VideoEvaluation, passes
from dualface.provenance import SYNTHETIC_NOTICE, png_info
from dualface.watermark import MIN_SIDE, embed_watermark

SHARES = {"identity_transfer", "source_identity"}  # shown as percentages


def _number(name: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    if name in SHARES:
        return f"{value:.0%}"
    unit = METRICS[name].unit
    return f"{value:.1f}{unit}" if unit == "°" else f"{value:.2f}{unit}" if unit else f"{value:.3f}"


def _bar(name: str, s: Score | None = None) -> str:
    """The metric's bar for usable, and why `s` does not count toward it where it does not."""
    metric = METRICS[name]
    if metric.usable is None:
        return ""
    sign = ">=" if metric.aim == "higher" else "<="
    on = "normalised " if metric.bar_on == "normalised" else ""
    shown = f"{metric.usable:.0%}" if name in SHARES else f"{metric.usable:g}"
    most = "" if metric.most is None else f", <= {metric.most:g}"
    note = f" (not credited: {s.not_credited})" if s is not None and s.not_credited else ""
    if s is not None and s.still and metric.still_passes:
        note += " (the source's own do not move: nothing to follow, not failed)"
    return f"{on}{sign} {shown}{most}{note}"


def _pasted(paste: dict) -> str:
    """The recorded paste settings; a sharpened paste is named, since it raises the sharpness figure."""
    if not paste:
        return ""
    shown = ", ".join(f"--{k} {v}" for k, v in paste.items() if k in ("mask", "color", "blend", "sharpen"))
    note = (
        " (an unsharp mask: edge contrast, not drawn detail; sharpness is not credited)" if paste.get("sharpen") else ""
    )
    return f"Pasted with {html.escape(shown)}{note}."


def _reached(name: str, s: Score) -> str:
    """The target's real faces' figure (normalised where the bar reads that), marked where they fail it too."""
    if s.reachable is None:
        return ""
    reached = s.reached(name)
    shown = _number(name, s.reachable) + ("" if reached.normalised is None else f" ({reached.normalised:.2f})")
    return shown + (" fails too" if passes(name, reached) is False and passes(name, s) is False else "")


def score_table(ev: VideoEvaluation) -> list[str]:
    """The scores as aligned text lines: value, floor (static swap), ceiling (source itself), normalised,
    and the target's own real faces pasted the same way where they were scored."""
    lines = [f"{'measure':20s} {'value':>10s} {'floor':>10s} {'ceiling':>10s} {'normalised':>10s}  bar"]
    for name, s in ev.scores.items():
        ok = passes(name, s)
        mark = "" if ok is None else (" ok" if ok else " FAIL")
        cells = [_number(name, v) if v is not None else "-" for v in (s.value, s.floor, s.ceiling)]
        norm = "-" if s.normalised is None else f"{s.normalised:.2f}"
        if s.value is None:
            cells[0] = "undefined"
        real = f"  [real faces: {_reached(name, s)}]" if s.reachable is not None else ""
        lines.append(
            f"{name:20s} {cells[0]:>10s} {cells[1]:>10s} {cells[2]:>10s} {norm:>10s}  {_bar(name, s)}{mark}{real}"
        )
    return lines


def verdict_line(ev: VideoEvaluation) -> str:
    """The verdict in words, naming the failed bars that even the target's own real faces fail."""
    if ev.usable:
        return "usable (every measure clears its bar)"
    line = "not usable yet (failing: " + ", ".join(ev.failed) + ")"
    if ev.out_of_reach:
        line += "; the target's own real faces, pasted the same way, fail " + ", ".join(ev.out_of_reach) + " too"
    return line


def _png(figure_or_image) -> str:
    buffer = io.BytesIO()
    if isinstance(figure_or_image, np.ndarray):
        # They show drawn faces: marked as every output is, so `dualface verify` knows them once saved.
        marked = embed_watermark(figure_or_image)
        Image.fromarray(marked).save(buffer, "PNG", pnginfo=png_info("evaluation stills"))
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
    for ax, key in ((axes[0], "mouth"), (axes[1], "eyes")):
        values = np.array([getattr(s, key) for s in ev.per_frame])
        ax.plot(frames, values[:, 0], label="source", lw=1.2)
        ax.plot(frames, values[:, 1], label="output", lw=1.2)
        ax.plot(frames, values[:, 2], label="static swap (floor)", lw=1, color="grey", ls="--")
        normalised = ev.scores[key].normalised
        ax.set(ylabel=f"{key} opening", title=f"{key}: normalised {_number('mouth', normalised)}")
        ax.legend(loc="upper right", fontsize=8)
    axes[1].set_xlabel("frame")
    plots.append(("Does the drawn face follow the source?", _png(fig)))
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.6))
    axes[0].plot(frames, [s.landmark_error for s in ev.per_frame], lw=1.2)
    axes[0].set(xlabel="frame", ylabel="error / inter-ocular", title="Landmark error")
    sharp = np.array([s.sharpness for s in ev.per_frame])
    axes[1].plot(frames, sharp[:, 0], label="source", lw=1.2)
    axes[1].plot(frames, sharp[:, 1], label="output", lw=1.2)
    axes[1].set(xlabel="frame", ylabel="Laplacian variance", title="Face detail", yscale="log")
    axes[1].legend(fontsize=8)
    changes = np.array(ev.changes)
    axes[2].plot(changes[:, 0], changes[:, 1], label="source", lw=1.2)
    axes[2].plot(changes[:, 0], changes[:, 2], label="output", lw=1.2)
    axes[2].set(xlabel="frame", ylabel="change in face, levels", title="Flicker")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    plots.append(("Landmark error, detail and flicker", _png(fig)))
    return plots


def _strip(pairs: list[tuple[int, np.ndarray, np.ndarray]], height: int = 180) -> str:
    """Source frames on top, output below, side by side; at least MIN_SIDE wide, so it carries the mark."""
    width = sum(height * source.shape[1] / source.shape[0] for _, source, _ in pairs)
    height = max(height, math.ceil(height * (MIN_SIDE + len(pairs)) / width))  # + rounding, a pixel each
    columns = []
    for _, source, output in pairs:
        scale = height / source.shape[0]
        size = (round(source.shape[1] * scale), height)
        pair = [np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in (source, output)]
        columns.append(np.concatenate(pair, 0))
    return _png(np.concatenate(columns, 1))


def _row(cells: list[str], good: bool | None = None) -> str:
    mark = "" if good is None else (" class='ok'" if good else " class='bad'")
    tds = "".join(f"<td{mark if i == 1 else ''}>{html.escape(c)}</td>" for i, c in enumerate(cells))
    return f"<tr>{tds}</tr>"


def write_report(ev: VideoEvaluation, strip: list, blurriest: list, folder: Path) -> tuple[Path, Path]:
    """report.json (everything, per frame included) and report.html in `folder`."""
    folder = ensure_writable_dir(Path(folder))
    data = {"tool": f"dualface {__version__}", **ev.headline(), "per_frame": [asdict(s) for s in ev.per_frame]}
    json_path, html_path = folder / "report.json", folder / "report.html"
    write_output(json_path, (json.dumps(data, indent=1) + "\n").encode())

    rows = []
    for name, s in ev.scores.items():
        cells = [
            METRICS[name].label,
            _number(name, s.value),
            "" if s.floor is None else _number(name, s.floor),
            "" if s.ceiling is None else _number(name, s.ceiling),
            "" if s.normalised is None else f"{s.normalised:.2f}",
            _reached(name, s),
            _bar(name, s),
        ]
        rows.append(_row(cells, passes(name, s)))
    for name, quality in ev.reconstruction.items():
        rows.append(
            _row(
                [
                    f"Reconstruction of {name} ({quality['faces']} held-out faces): SSIM / PSNR",
                    f"{quality['ssim']:.3f} / {quality['psnr']:.1f} dB",
                    "",
                    "",
                    "",
                    "",
                    "higher is better",
                ]
            )
        )
    verdict = f"<p class='{'ok' if ev.usable else 'bad'}'>Verdict: {html.escape(verdict_line(ev))}.</p>"
    figures = "".join(f"<h2>{html.escape(title)}</h2><img src='{src}'>" for title, src in _plots(ev))
    worst = (
        f"<h2>The {len(blurriest)} least sharp output faces (source top, output below)</h2>"
        f"<img src='{_strip(blurriest, 160)}'>"
        if blurriest
        else ""
    )
    reference = html.escape(ev.reference_faces) if ev.reference_faces else "none given: no sharpness ratio or gap"
    real = "" if ev.real_faces is None else f" ({ev.real_faces} faces)"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>dualface evaluation</title>
<meta name="generator" content="dualface {__version__}"><meta name="description" content="{SYNTHETIC_NOTICE}">
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px}}
.ok{{color:#070;font-weight:bold}}.bad{{color:#b00;font-weight:bold}}img{{max-width:100%}}</style></head><body>
<h1>dualface evaluation</h1>
<p>{html.escape(ev.output)}: {html.escape(ev.source)} swapped into <b>{html.escape(ev.target)}</b> by
{html.escape(str(ev.checkpoint))} (step {ev.step}); {ev.frames_scored} of {ev.frames} frames had a face.
{_pasted(ev.paste)}
<i>{SYNTHETIC_NOTICE}</i></p>
{verdict}
<table><tr><th>measure</th><th>value</th><th>floor (static swap)</th><th>ceiling</th><th>normalised</th>
<th>target's real faces pasted{real}</th><th>bar for usable</th></tr>{"".join(rows)}</table>
<h2>Source (top) and output (bottom)</h2><img src='{_strip(strip)}'>
{worst}
{figures}
<p>Controls: the floor is a static swap (the target decoder's drawing of the first face, pasted on every
frame with the conversion's own mask and colour settings); the ceiling is the source against itself, or
the target's own faces for identity and sharpness. Normalised = (value - floor) / (ceiling - floor).
The target's real faces pasted: each frame's face replaced by the target's own real face nearest in pose and
expression, cut and pasted as the swap was: what a perfect decoder pasted this way would score (a
retrieval, not a strict bound: a trained decoder draws the exact pose and can do a little better). A bar
those faces fail too is held by the paste (what stays of the source's head around the face, and the
target's own proportions), not by training.
Expression: 68 dlib landmarks fitted on the aligned face with everything outside a fixed central region
blanked, so only the drawn face is read; agreement is the concordance 2 cov / (var a + var b), undefined for
a series that does not vary. Identity: dlib's 128-d embeddings against each identity's mean embedding from
training; the gap divides the output's mean distance by that of the target's own faces. Sharpness: variance
of the Laplacian inside the face, against the target's own faces ({reference}) cut at the same on-screen
size. Flicker: mean absolute frame-to-frame change inside the source face's hull. Made by dualface
{__version__}.</p>
</body></html>
"""
    write_output(html_path, page.encode())
    return json_path, html_path
