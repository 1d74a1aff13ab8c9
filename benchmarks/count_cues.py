"""Does a view count to L3, or recognise it by its look? Hide the counting anchors and see.

    python benchmarks/count_cues.py --experiment work/mix6_levels \
        --data work/data/synth_g7/l3_dataset.npz --n 40
    python benchmarks/count_cues.py --experiment work/mix6_levels --data ../shared/data/real_val

A reader names a lumbar vertebra by counting: down from the last rib-bearing vertebra (T12) or
up from the sacrum. A net that still places L3 when neither is in the image has learnt what L3
itself looks like in its training data, a cue that real spines give far less reliably.

Phantoms (an npz with per-level labels): the positive cases whose image holds T12 but not the
sacrum; each view's ensemble decodes the level sequence on the image as it is, with every row
above a cut blanked (no T12, no rib-bearing vertebra: no anchor left; the cut lies 10 mm above
L1's centre plus a per-case random share of the L1-L2 distance, so that its edge is at no fixed
level a net could count from), with that
cut plus the posterior 35 % of the columns blanked (spinous processes, rib heads), with the cut
plus every column from 5 mm behind the vertebral bodies' back blanked (all posterior elements:
pedicles, articular processes, laminae; the sagittal canvas is centred on the bodies' back), and
with the cut image turned by -12 or +12 degrees about L3 on the spine (``l3loc.augment``'s
rotation): a view that counts has nothing to count after the cut, so the turn should not matter;
a view that reads L3 off its endplates' tilt follows the turn to another level. Real
scans (a folder with ``labels.csv``): the L3 of each view on the image as it is, with its top
40 or 80 mm blanked, and with its bottom 30 or 60 mm blanked (a shorter field of view), in mm
from the true L3. Blanked = 0, what the canvas holds outside the field of view.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from l3loc.augment import Augmenter  # noqa: E402
from l3loc.decode import row_profile  # noqa: E402
from l3loc.levels import LEVELS, decode_levels  # noqa: E402
from l3loc.metrics import RIGHT_LEVEL_MM  # noqa: E402
from l3loc.runs import trained_views  # noqa: E402

L3, L2, L1, T12, S1 = (LEVELS.index(k) for k in ("L3", "L2", "L1", "T12", "S1"))
TURNS_DEG = (-12.0, 12.0)


def turned(image: np.ndarray, l3: float, degrees: float, spacing_mm: float) -> np.ndarray:
    """``image`` turned in its plane by ``degrees`` about L3's row on the spine column, as
    training's rotation step turns it, nothing else changed."""
    only_turn = {"p": 1.0, "hflip": False, "intensity_shift": 0.0, "intensity_scale": 0.0,
                 "zoom": (1.0, 1.0), "deform_mm": 0.0, "thickness_mm": (1.0, 1.0),
                 "rotate_p": 1.0, "rotate_deg": (degrees, degrees)}
    return Augmenter(only_turn, "sagittal", np.random.default_rng(0), spacing_mm)(image, l3)[0]


def l3_row(vm, image: np.ndarray) -> float:
    """L3 of the level sequence the view model decodes on a processed image (row 0 cranial)."""
    profiles = np.stack([row_profile(m, vm.col_range) for m in vm.maps.confidence_map(image)])
    return float(decode_levels(profiles, LEVELS, vm.spacing_mm).rows[L3])


def phantoms(exp: Path, npz: Path, n_max: int) -> None:
    from l3loc.cache import open_cache
    from l3loc.inference import load_localiser

    turns = [f"cut, turned {d:+.0f} degrees" for d in TURNS_DEG]
    print("| view | cases | L3 at its level: image as is | no T12, no sacrum | and no posterior "
          "columns | and nothing behind the bodies | " + " | ".join(turns) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(turns))
    for view in trained_views(exp):
        vm = load_localiser(exp, view, backend="auto").views[view]
        data = open_cache(vm.cfg, view, progress=False, source=npz)
        right = {key: [] for key in ("as is", "cut", "cut, posterior", "cut, bodies", *turns)}
        for i in range(len(data)):
            truth = data.label_rows(i, LEVELS)
            if not (all(math.isfinite(truth[k]) for k in (L3, L2, L1, T12)) and not math.isfinite(truth[S1])):
                continue
            image = data[i][0]
            cut = image.copy()
            edge = truth[L1] - 10 / vm.spacing_mm + np.random.default_rng(i).uniform() * (truth[L2] - truth[L1])
            cut[:max(int(edge), 0)] = 0
            posterior = cut.copy()
            posterior[:, int(0.65 * image.shape[1]):] = 0
            variants = [("as is", image), ("cut", cut), ("cut, posterior", posterior)]
            if view == "sagittal":   # (frontal columns run left-right)
                bodies = cut.copy()
                bodies[:, image.shape[1] // 2 + int(5 / vm.spacing_mm):] = 0
                variants.append(("cut, bodies", bodies))
            variants += [(key, turned(cut, truth[L3], d, vm.spacing_mm))
                         for key, d in zip(turns, TURNS_DEG)]
            for key, im in variants:
                right[key].append(abs(l3_row(vm, im) - truth[L3]) * vm.spacing_mm <= RIGHT_LEVEL_MM)
            if len(right["as is"]) >= n_max:
                break
        n = len(right["as is"])
        cells = [f"{100 * np.mean(v):.0f} %" if v else "–" for v in right.values()]
        print(f"| {view} | {n} | " + " | ".join(cells) + " |")


def real_scans(exp: Path, folder: Path) -> None:
    from l3loc.inference import load_localiser
    from l3loc.io.annotations import annotation_to_canonical_row
    from l3loc.io.ct_checks import read_ct
    from l3loc.preprocess import preprocess_volume
    from l3loc.scan_inputs import list_inputs

    cuts = (("as is", 0, 0), ("top 40 mm", 40, 0), ("top 80 mm", 80, 0),
            ("bottom 30 mm", 0, 30), ("bottom 60 mm", 0, 60))
    print("| scan | view | L3 from the truth, mm: " + " | ".join(c[0] for c in cuts) + " |")
    print("|---|---|" + "---|" * len(cuts))
    models = {v: load_localiser(exp, v, backend="auto").views[v] for v in trained_views(exp)}
    for scan in list_inputs([folder / "labels.csv"]):
        if (scan.truth or {}).get("negative"):
            continue
        ct, _ = read_ct(scan.path, series_uid=scan.series_uid)
        canonical = annotation_to_canonical_row({**scan.truth, "path": ct.path}, ct.geometry, "L3")
        for view, vm in models.items():
            case = preprocess_volume(ct, view, cfg=vm.preprocess)
            truth = case.geometry.processed_row_from_z(ct.geometry.z_mm(canonical))
            rows = np.flatnonzero(case.image.max(axis=1) > 0)
            cells = []
            for _, top, bottom in cuts:
                image = case.image.copy()
                image[rows.min():rows.min() + int(top / vm.spacing_mm)] = 0
                if bottom:
                    image[rows.max() + 1 - int(bottom / vm.spacing_mm):rows.max() + 1] = 0
                row = l3_row(vm, image)
                cells.append("–" if not math.isfinite(row) else f"{(row - truth) * vm.spacing_mm:+.0f}")
            print(f"| {scan.name} | {view} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path,
                    help="an npz of phantoms with level labels, or a folder with labels.csv")
    ap.add_argument("--n", type=int, default=40, help="phantoms: at most this many cases")
    args = ap.parse_args()
    if args.data.suffix == ".npz":
        phantoms(args.experiment, args.data, args.n)
    else:
        real_scans(args.experiment, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
