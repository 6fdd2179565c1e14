"""dualface against faceswap 3, trained on the same faces on the same machine in the same run.

    make bench-peer                                   # all three steps below
    python bench/peer.py faces SCRATCH                # face folders for the kit, from data/grid
    bash ../shared/peers/faceswap/compare.sh SCRATCH .venv/bin/python SCRATCH/faces-dualface/{s1,other}
    python bench/peer.py results SCRATCH              # the kit's newest results -> bench/results/peer.json

The kit (../shared/peers/faceswap, see its README) installs faceswap into SCRATCH, converts the faces to
faceswap's format and trains both tools interleaved, each run recording the load average before it. The
faces: GRID speaker s1 (data/grid/s1) against the other bundled speaker (data/grid/speakers), extracted
by `dualface extract`; each folder holds links to at most the first FACES_LIMIT (1000) faces by name,
the very faces the kit converts for faceswap, so both tools train on the same data.

The ratio at each batch: a dualface `original` run over the mean of the faceswap runs at that batch.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import cpu_name, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "grid"
SIDES = {"s1": DATA / "s1", "other": DATA / "speakers"}


def make_faces(scratch: Path, limit: int) -> None:
    """SCRATCH/faces-dualface/{s1,other}: links to the first `limit` faces (by name) of each extraction."""
    from dualface.config import ExtractConfig
    from dualface.extract import extract

    for name, clips in SIDES.items():
        everything = scratch / "extracted" / name
        summary = extract(ExtractConfig(inputs=[clips], output=everything, progress=False))
        if summary.errors:
            sys.exit(f"extraction failed: {summary.errors}")
        chosen = sorted(everything.glob("*.png"))[:limit]
        folder = scratch / "faces-dualface" / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        for png in chosen:
            (folder / png.name).symlink_to(png.resolve())
        print(f"{folder}: {len(chosen)} faces")


def newest_results(scratch: Path) -> Path:
    files = sorted(scratch.glob("results-*.jsonl"))
    if not files:
        sys.exit(f"no results-*.jsonl in {scratch}: run the kit's compare.sh first (make bench-peer)")
    return files[-1]


def summarize(rows: list[dict]) -> dict:
    """Ratios dualface / faceswap at each batch, the dense peaks, and each run as measured."""
    dense: dict[str, list[float]] = {}
    for r in rows:
        if r["tool"] == "matmul":
            dense.setdefault(f"{r.get('kernel', 'matmul')} {r['dtype']}", []).append(r["gflop_per_s"])
    peak = {dtype: max(v for k, vs in dense.items() if k.endswith(dtype) for v in vs) for dtype in ("fp32", "bf16")}
    runs = [
        {
            k: r[k]
            for k in ("tool", "model", "precision", "dtype", "batch", "egs_per_s", "s_per_it_median", "load_before")
            if k in r
        }
        for r in rows
        if r["tool"] != "matmul"
    ]
    ratios = []
    for batch in sorted({r["batch"] for r in runs}):
        faceswap = [r["egs_per_s"] for r in runs if r["tool"] == "faceswap" and r["batch"] == batch]
        if not faceswap:
            continue
        reference = statistics.mean(faceswap)
        for r in runs:
            if r["tool"] == "dualface" and r["model"] == "original" and r["batch"] == batch:
                ratios.append(
                    {
                        "batch": batch,
                        "dualface": f"original {r.get('precision')} ({r.get('dtype')})",
                        "dualface_egs_per_s": r["egs_per_s"],
                        "faceswap_egs_per_s_mean": round(reference, 3),
                        "faceswap_runs": len(faceswap),
                        "ratio": round(r["egs_per_s"] / reference, 3),
                        "load_before": r.get("load_before"),
                    }
                )
    return {"dense_gflop_per_s": dense, "peak_gflop_per_s": peak, "ratios": ratios, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("faces", "results"))
    parser.add_argument("scratch", type=Path, nargs="?", default=Path(tempfile.gettempdir()) / "dualface-peer")
    parser.add_argument("--limit", type=int, default=int(os.environ.get("FACES_LIMIT", 1000)))
    args = parser.parse_args()
    if args.step == "faces":
        make_faces(args.scratch, args.limit)
        return
    source = newest_results(args.scratch)
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    result = summarize(rows)
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    print(f"dualface vs faceswap 3 on {cpu_name()} ({capability}, {os.cpu_count()} cores), from {source.name}")
    print("dense 2048^3, 2 threads (GFLOP/s): " + ", ".join(f"{k} {v}" for k, v in result["dense_gflop_per_s"].items()))
    print(f"\n{'tool':<9} {'model':<9} {'dtype':<9} {'batch':>5} {'EGs/s':>8} {'s/it':>6}  load before")
    for r in result["runs"]:
        print(
            f"{r['tool']:<9} {r['model']:<9} {r.get('dtype', 'float32'):<9} {r['batch']:>5} {r['egs_per_s']:>8.2f} "
            f"{r['s_per_it_median']:>6.2f}  {r.get('load_before', '')}"
        )
    print()
    for r in result["ratios"]:
        print(
            f"batch {r['batch']}: dualface {r['dualface']} {r['dualface_egs_per_s']:.2f} / faceswap original "
            f"(mean of {r['faceswap_runs']}) {r['faceswap_egs_per_s_mean']:.2f} = {r['ratio']:.2f}x"
        )
    write_result(
        "peer",
        {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "capability": capability,
            "kit": "../shared/peers/faceswap (compare.sh)",
            "results_file": source.name,
            "faces": {name: str(path.relative_to(ROOT)) for name, path in SIDES.items()},
            "faces_limit": args.limit,
            **result,
        },
    )


if __name__ == "__main__":
    main()
