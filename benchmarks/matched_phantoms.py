"""Phantoms of each real scan's acquisition and field of view, thin and made thick alike: does a
model lose a real scan at 5 mm because of the slices or because of how the real spine looks?

    python benchmarks/matched_phantoms.py --data ../shared/data/real_val --out work/data/matched --n 10
    python tools/eval.py --experiment l3loc/shipped/<model> --data work/data/matched --out work/matched

For each positive scan of ``<data>/labels.csv``, ``--n`` phantoms (seeds ``--seed``, ``--seed`` + 1,
...; every other one of the ``varied`` anatomy family) of its slice thickness, pixel size and
matrix (``side_by_side.matching_phantom``), chosen among plans that hold L3 and start about as far
over it as the real scan does (within ``START_TOLERANCE_MM``), with no gantry tilt. Each is
written as NIfTI (``<real>~<phantom>.nii.gz``) and, when its slices are thinner than
``--thick-mm``, again made into contiguous slabs of that thickness exactly as
``benchmarks/real_thick.py`` makes the real 5 mm set (``..._thick<mm>.nii.gz``), with a
``labels.csv`` of the phantoms' own L3 (centre and body extent, the phantom's z). Evaluation only.

If a model's result on the phantoms does not change with the thickening while the real scan's
does, the phantoms keep a cue at thick slices that the real spine does not have.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.cli import script_main  # noqa: E402
from l3loc.io.volume import read_volume, write_volume  # noqa: E402
from real_crops import read_labels_for  # noqa: E402
from real_thick import thick_slices  # noqa: E402
from side_by_side import matching_phantom  # noqa: E402

#: How far the phantom's first slice may lie from the real scan's, counted from L3 (mm).
START_TOLERANCE_MM = 30.0


def matched_phantoms(ct, l3_z_mm: float, n: int, seed: int):
    """``n`` (plan, hu) of ``ct``'s acquisition whose scans start as far over L3 as ``ct``'s."""
    start = float(np.max(ct.geometry.z_mm(range(ct.hu.shape[0])))) - l3_z_mm

    def want(p):
        return (p.l3_in_fov and p.tilt_deg == 0
                and abs(p.slice_z_mm[0] - p.vertebra("L3").z_centre - start) <= START_TOLERANCE_MM)

    for k in range(n):
        anatomy = "varied" if k % 2 else "default"
        yield matching_phantom(ct, True, "default", seed + k, overrides={"anatomy": anatomy}, want=want)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder with labels.csv (real scans)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=10, help="phantoms per real scan")
    ap.add_argument("--seed", type=int, default=100, help="seed of the first phantom")
    ap.add_argument("--thick-mm", type=float, default=5.0, help="also write each phantom as slabs this thick")
    ap.add_argument("--overwrite", action="store_true", help="replace the scans of a non-empty --out")
    args = ap.parse_args(argv)
    table = read_labels_for(args.data, args.out, args.overwrite)
    rows = []
    for _, r in table[table["negative"] == 0].iterrows():
        ct = read_volume(args.data / r["path"])
        for plan, hu in matched_phantoms(ct, float(r["l3_z_mm"]), args.n, args.seed):
            z, spacing, l3 = np.asarray(plan.slice_z_mm, float), plan.acquired_spacing_mm, plan.vertebra("L3")
            label = {"l3_z_mm": l3.z_centre, "l3_top_z_mm": l3.z_top, "l3_bottom_z_mm": l3.z_bottom, "negative": 0}
            name = f"{r['name']}~{plan.name}_{plan.anatomy}"
            made = [(name, hu, spacing, float(z[0]))]
            if spacing[0] < args.thick_mm:
                thick, z_first = thick_slices(hu, z, args.thick_mm)
                made.append((f"{name}_thick{args.thick_mm:g}", thick, (args.thick_mm, *spacing[1:]), z_first))
            for scan, vol, sp, z_first in made:
                write_volume(args.out / f"{scan}.nii.gz", vol, sp, z_first_mm=z_first, overwrite=args.overwrite)
                rows.append({"name": scan, "path": f"{scan}.nii.gz", **label})
            print(f"{name}: {hu.shape[0]} slices of {spacing[0]:g} mm, starts "
                  f"{z[0] - l3.z_centre:.0f} mm over L3", flush=True)
    with atomic_path(args.out / "labels.csv", overwrite=args.overwrite) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    print(f"wrote {len(rows)} scans and labels.csv to {args.out}")
    return 0


if __name__ == "__main__":
    script_main(main)
