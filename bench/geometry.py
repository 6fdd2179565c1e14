"""What the landmark error of a *perfect* swap would be: how far apart two people's faces are in landmark
geometry alone.

`evaluate`'s landmark error compares the output's 68 landmarks with the source's, over the inter-ocular
distance. A perfect swap draws the target's face at the source's pose and expression, so its landmarks
still differ from the source's by the shape of the target's face: eye spacing, nose length, mouth width,
jaw line. This bench measures that part. Each person's faces (the quality runs' training faces) are put
in mean-face units (`align.to_mean_face`), closed-mouth frames are averaged into a mean shape, and the
distance between two people's mean shapes is the landmark error a perfect swap of them would score:

- `all`: all 68 points, as if the swap carried the target's jaw line too;
- `jaw_kept`: the jaw counted as the source's (the paste mask ends at the source's jaw, so the outline
  dlib finds there is mostly the source's);
- `matched_yaw_*`: the same, from frames of both people turned alike (within 0.02 of one head-turn
  value), so a difference in how the two sat to their cameras does not count as face shape.

    python bench/geometry.py          # writes bench/results/geometry.json
"""

import json
from itertools import combinations
from pathlib import Path

import numpy as np

from common import hardware, write_result
from dualface.align import to_mean_face, transform_points
from dualface.landmarks import JAW, LEFT_EYE, RIGHT_EYE, mouth_opening
from quality import CACHE, DIRECTIONS, faces

PEOPLE = {  # name: training clips (../shared/data), as the quality runs and the base model use them
    "s1": DIRECTIONS["s1-obama"][1],
    "obama": DIRECTIONS["s1-obama"][3],
    **{f"more-{s}": f"grid/more/{s}/*.mpg" for s in ("s4", "s26", "s31")},
}
CLOSED = 0.05  # mouth opening below which a face counts as closed-mouthed


def shapes(folder: Path) -> np.ndarray:
    """(N, 68, 2) landmarks of every face in an extraction folder, in mean-face units."""
    out = []
    for path in sorted(folder.glob("*.alignments.json")):
        for frame in json.loads(path.read_text())["frames"]:
            for face in frame["faces"]:
                points = np.array(face["landmarks"], np.float32)
                out.append(transform_points(points, to_mean_face(points)))
    return np.array(out)


def yaw(shape: np.ndarray) -> np.ndarray:
    """Head turn proxy: the nose tip's offset from the eyes' midpoint, over the eye span."""
    right, left = shape[:, RIGHT_EYE].mean(1), shape[:, LEFT_EYE].mean(1)
    return (shape[:, 30, 0] - (right[:, 0] + left[:, 0]) / 2) / np.linalg.norm(right - left, axis=1)


def distance(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean point distance of two mean shapes over a's inter-ocular distance: all points, and jaw kept."""
    per_point = np.linalg.norm(a - b, axis=1)
    interocular = np.linalg.norm(a[RIGHT_EYE].mean(0) - a[LEFT_EYE].mean(0))
    return {
        "all": round(float(per_point.mean() / interocular), 4),
        "jaw_kept": round(float(np.delete(per_point, JAW).sum() / len(per_point) / interocular), 4),
    }


def main() -> None:
    data = {}
    for name, pattern in PEOPLE.items():
        shape = shapes(faces(CACHE, name, pattern))
        closed = np.array([mouth_opening(s) for s in shape]) < CLOSED
        data[name] = (shape[closed], yaw(shape[closed]))
    pairs = {}
    for a, b in combinations(PEOPLE, 2):
        (sa, ya), (sb, yb) = data[a], data[b]
        row = {"closed_mouth_faces": [len(sa), len(sb)], **distance(sa.mean(0), sb.mean(0))}
        # the head turn both people show most often, within 0.02
        turns = np.arange(-0.15, 0.15, 0.01)
        most, turn = max((min((abs(ya - y) < 0.02).sum(), (abs(yb - y) < 0.02).sum()), y) for y in turns)
        if most >= 10:
            ka, kb = abs(ya - turn) < 0.02, abs(yb - turn) < 0.02
            matched = distance(sa[ka].mean(0), sb[kb].mean(0))
            row.update(matched_yaw=round(float(turn), 2), matched_faces=[int(ka.sum()), int(kb.sum())],
                       matched_yaw_all=matched["all"], matched_yaw_jaw_kept=matched["jaw_kept"])  # fmt: skip
        pairs[f"{a} / {b}"] = row
    head = f"{'faces':>11s} {'all':>6s} {'jaw kept':>9s}"
    print(f"{'pair':24s} {head}   {'matched yaw':>11s} {head}")
    for pair, r in pairs.items():
        counts = "/".join(map(str, r["closed_mouth_faces"]))
        line = f"{pair:24s} {counts:>11s} {r['all']:6.3f} {r['jaw_kept']:9.3f}"
        if "matched_yaw" in r:
            counts = "/".join(map(str, r["matched_faces"]))
            line += f"   {r['matched_yaw']:11.2f} {counts:>11s} {r['matched_yaw_all']:6.3f}"
            line += f" {r['matched_yaw_jaw_kept']:9.3f}"
        print(line)
    write_result("geometry", {"pairs": pairs, "people": PEOPLE, "hardware": hardware()})


if __name__ == "__main__":
    main()
