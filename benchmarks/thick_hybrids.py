"""Where does a thick reconstruction lose a real scan's level? The thin scan with one part of it
replaced by its thick version.

    python benchmarks/thick_hybrids.py --data ../shared/data/real_val --out work/data/hybrids --above-l3 86
    python tools/eval.py --experiment l3loc/shipped/<model> --data work/data/hybrids --out work/hybrids

For each positive scan of ``<data>/labels.csv`` thinner than ``--slice-mm``, writes on the thin
scan's own slices (so every variant has the same grid and only the slab averaging differs):

- ``<name>~thin``: the scan as it is;
- ``<name>~thick``: every thin slice replaced by the mean of its ``--slice-mm`` slab
  (``real_thick.thick_on_thin_slices``, the slabs of ``benchmarks/real_thick.py``);
- ``<name>~thick_above<h>`` / ``~thick_below<h>`` for each ``--above-l3`` h: only the slices more /
  less than h mm over the labelled L3 centre thick;
- ``<name>~thick_spine<w>`` / ``~thick_sides<w>`` for each ``--spine-mm`` w: only the columns within /
  beyond w mm of the spine's left-right centre (``mip.spine_lr_centre_px``, the centre the
  sagittal slab is taken around) thick.
  A cue near a boundary makes the split flip with it: use several widths.

A variant whose level moves like the whole thick scan's holds the part that loses it. Evaluation
only: labels.csv carries the original L3 labels (the slices' z do not change).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

from l3loc.cli import script_main  # noqa: E402
from l3loc.mip import spine_lr_centre_px  # noqa: E402
from real_crops import write_derived_set  # noqa: E402
from real_thick import thick_on_thin_slices  # noqa: E402


def hybrids(hu: np.ndarray, z_mm: np.ndarray, spacing_mm: tuple, l3_z_mm: float, slice_mm: float,
            above_l3: list[float], spine_mm: list[float]):
    """(suffix, hu) of every variant (module docstring)."""
    thick = thick_on_thin_slices(hu, z_mm, slice_mm)
    yield "thin", hu
    yield "thick", thick
    for h in above_l3:
        above = (z_mm > l3_z_mm + h)[:, None, None]
        yield f"thick_above{h:g}", np.where(above, thick, hu)
        yield f"thick_below{h:g}", np.where(above, hu, thick)
    x = np.abs(np.arange(hu.shape[2]) - spine_lr_centre_px(hu, spacing_mm)) * spacing_mm[2]
    for w in spine_mm:
        spine = (x <= w)[None, None, :]
        yield f"thick_spine{w:g}", np.where(spine, thick, hu)
        yield f"thick_sides{w:g}", np.where(spine, hu, thick)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder with labels.csv (real scans)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--slice-mm", type=float, default=5.0, help="thickness of the slabs")
    ap.add_argument("--above-l3", type=float, nargs="*", default=[86.0],
                    help="mm over the L3 centre where the thick part starts / stops (one pair each)")
    ap.add_argument("--spine-mm", type=float, nargs="*", default=[30.0],
                    help="half-widths of the spine's column (one pair of variants each)")
    ap.add_argument("--overwrite", action="store_true", help="replace the scans of a non-empty --out")
    args = ap.parse_args(argv)

    def derive(ct, r):
        z = np.asarray(ct.geometry.z_mm(range(ct.hu.shape[0])), dtype=float)
        if ct.spacing_mm[0] >= args.slice_mm:
            yield f"slices of {ct.spacing_mm[0]:g} mm: not thinner than {args.slice_mm:g}, skipped"
            return
        for suffix, hu in hybrids(ct.hu, z, ct.spacing_mm, float(r["l3_z_mm"]), args.slice_mm,
                                  args.above_l3, args.spine_mm):
            yield f"{r['name']}~{suffix}", np.ascontiguousarray(hu), ct.spacing_mm, float(z[0])

    write_derived_set(args.data, args.out, derive, args.overwrite)
    return 0


if __name__ == "__main__":
    script_main(main)
