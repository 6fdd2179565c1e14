"""The identity gap against the landmark error, for every way measured of trading one for the other: the
drawn face warped toward the source's proportions (`convert --morph`, each model's points joined in order
of the amount), and the target's own real faces pasted with the paste reaching further
(`bench/ceiling.py`'s variants). Issue 11's bar is the lower-left box. Reads committed results only: no
training, no conversion.

    python bench/frontier.py    # -> docs/frontier.png, bench/results/frontier.json
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from common import write_result

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BAR_GAP, BAR_NME = 1.3, 0.05
DIRECTIONS = {"s1-obama": "s1 -> Obama", "obama-s1": "Obama -> s1"}
# model: [(--morph, the run whose <run>-<direction>.json holds its figures)]
MORPHS = {
    "hour at batch 4, seed 3": [
        (0.0, "quality_lite128_gan_recolor_warpoff06_cov09_matchmouth_seed3_60m_epyc_batch4"),
        (0.15, "quality_lite128_seed3_60m_epyc_batch4_morph015"),
        (0.3, "quality_lite128_seed3_60m_epyc_batch4_morph03"),
        (0.5, "quality_lite128_seed3_60m_epyc_batch4_morph05"),
    ],
    "hour at batch 2, seed 3": [
        (0.0, "quality_lite128_gan_recolor_warpoff06_cov09_matchmouth_seed3_60m_epyc_batch2"),
        (0.15, "quality_lite128_seed3_60m_epyc_batch2_morph015"),
    ],
    "hour at batch 2, seed 4": [
        (0.0, "quality_lite128_gan_recolor_warpoff06_cov09_matchmouth_seed4_60m_epyc_batch2"),
        (0.15, "quality_lite128_seed4_60m_epyc_batch2_morph015"),
    ],
    "hour at batch 4, seed 4": [
        (0.0, "quality_lite128_gan_recolor_warpoff06_cov09_matchmouth_seed4_60m_epyc_batch4"),
        (0.1, "quality_lite128_seed4_60m_epyc_batch4_morph01"),
    ],
}
CEILING = "ceiling_reach"  # the real faces pasted: bench/ceiling.py's variants


def figures(run: str, direction: str) -> dict | None:
    path = RESULTS / f"{run}-{direction}.json"
    if not path.is_file():
        return None
    last = json.loads(path.read_text())["evaluations"][-1]
    return {
        "gap": round(last["identity_gap"]["value"], 3),
        "landmark_error": round(last["landmark_error"]["value"], 4),
        "mouth": round(last["mouth"]["normalised"], 2),
        "sharpness": round(last["sharpness"]["value"], 2),
        "failed": last["failed"],
    }


def main() -> None:
    table: dict = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    ceiling = json.loads((RESULTS / f"{CEILING}.json").read_text())["results"]
    for ax, (direction, title) in zip(axes, DIRECTIONS.items(), strict=True):
        rows = table.setdefault(direction, {})
        ax.add_patch(plt.Rectangle((0, 0), BAR_NME, BAR_GAP, color="tab:green", alpha=0.12, label="issue 11's bar"))
        for model, points in MORPHS.items():
            measured = [(m, figures(run, direction)) for m, run in points]
            measured = [(m, f) for m, f in measured if f is not None]
            if not measured:
                continue
            rows[model] = {f"morph {m:g}": f for m, f in measured}
            xs, ys = [f["landmark_error"] for _, f in measured], [f["gap"] for _, f in measured]
            ax.plot(xs, ys, "o-", label=f"{model}, --morph " + " / ".join(f"{m:g}" for m, _ in measured))
            for m, f in measured:
                ax.annotate(f"{m:g}", (f["landmark_error"], f["gap"]), textcoords="offset points", xytext=(4, 4))
        real = {k[len(direction) :].strip() or "as converted": v for k, v in ceiling.items() if k.startswith(direction)}
        rows["real faces pasted"] = {k: {"gap": round(v["identity_gap"], 3), "landmark_error": round(
            v["landmark_error"], 4)} for k, v in real.items()}  # fmt: skip
        ax.plot([v["landmark_error"] for v in real.values()], [v["identity_gap"] for v in real.values()], "kx",
                label="the target's real faces pasted, reaching further")  # fmt: skip
        ax.set(title=title, xlabel="landmark error (lower: follows the source's landmarks)", ylabel="identity gap")
        ax.set_xlim(0.025, 0.07)
        ax.set_ylim(1.0, 2.4)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle("Every trade measured of identity against landmark agreement (bench/frontier.py)")
    fig.tight_layout()
    out = ROOT / "docs" / "frontier.png"
    fig.savefig(out, dpi=90)
    for direction, rows in table.items():
        print(f"\n{DIRECTIONS[direction]}")
        for model, points in rows.items():
            for name, f in points.items():
                print(f"  {model:28s} {name:28s} gap {f['gap']:.3f}  landmark error {f['landmark_error']:.4f}")
    write_result("frontier", {"bar": {"identity_gap": BAR_GAP, "landmark_error": BAR_NME}, "figures": table,
                              "plot": str(out.relative_to(ROOT))})  # fmt: skip


if __name__ == "__main__":
    main()
