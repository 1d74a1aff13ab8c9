"""Real scans as thick-slice reconstructions: does a model's L3 survive 5 mm slices?

    python benchmarks/real_thick.py --data ../shared/data/real_val --out work/data/real_val_thick5
    python tools/eval.py --experiment <run> --data work/data/real_val_thick5
    python benchmarks/real_thick.py --data ../shared/data/real_val --out work/data/real_val_resliced5 --on-thin-slices

Many cohorts hold only the thick (5 mm) series a radiologist reads. For each positive scan of the
annotation CSV (``labels.csv``) thinner than ``--slice-mm``, writes ``<name>_thick<mm>.nii.gz``:
contiguous slabs of ``--slice-mm`` from the top slice down, each the mean HU of the thin slices
weighted by their overlap with it (a box slice profile, as the phantoms' painter uses: what a
thick reconstruction of the same acquisition approximates; a partial slab at the bottom is
dropped), at the slab's centre z, with a ``labels.csv`` of the same L3 labels (world z: only the
slice grid changes).

``--on-thin-slices`` keeps the thin grid and gives each thin slice its slab's mean instead
(``<name>_resliced<mm>.nii.gz``): a thick series re-sliced to thin spacing, as some archives and
viewers store one; the slabs are the same, only the sampling differs (a 5 mm file resampled by
the preprocessing interpolates between slab centres, this one steps).

These are the real validation scans, resampled: evaluate on them, never train or choose
thresholds on them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from l3loc.cli import script_main  # noqa: E402
from l3loc.synth.painter import overlap_fraction  # noqa: E402  (the phantoms' slice profile)
from real_crops import write_derived_set  # noqa: E402


def thick_slices(hu: np.ndarray, z_mm: np.ndarray, slice_mm: float) -> tuple[np.ndarray, float]:
    """(hu of the thick slices, z of the first one's centre): contiguous slabs of ``slice_mm``
    from the top slice's upper edge down, each the mean of the thin slices weighted by how much of
    each (contiguous, as thick as its spacing) lies inside it: a box slice profile, so every slab
    is equally thick whatever the thin spacing (counting whole slices would make a 3 mm scan's 5 mm
    slabs alternately 3 and 6 mm thick)."""
    thin = float(abs(z_mm[0] - z_mm[1]))
    top, bottom = z_mm[0] + thin / 2, z_mm[-1] - thin / 2
    n = int(np.floor((top - bottom) / slice_mm + 1e-6))     # whole slabs only
    upper = top - slice_mm * np.arange(n)[:, None]           # each slab's upper edge
    inside = overlap_fraction(upper - slice_mm, upper, z_mm[None, :], thin)   # [n, thin slices]
    weights = inside / inside.sum(axis=1, keepdims=True)
    out = np.tensordot(weights, hu.astype(np.float32), axes=(1, 0))
    return np.round(out).astype(hu.dtype), float(top - slice_mm / 2)


def thick_on_thin_slices(hu: np.ndarray, z_mm: np.ndarray, slice_mm: float) -> np.ndarray:
    """``hu`` with each slice replaced by its ``slice_mm`` slab's mean (the slab whose centre is
    nearest; slices below the last whole slab take the last one): a thick series re-sliced on the
    thin grid."""
    thick, z_first = thick_slices(hu, z_mm, slice_mm)
    centres = z_first - slice_mm * np.arange(thick.shape[0])
    return thick[np.argmin(np.abs(z_mm[:, None] - centres[None, :]), axis=1)]


def thick_version(name: str, hu: np.ndarray, spacing_mm, z_mm, slice_mm: float) -> tuple:
    """``(name_thick<mm>, hu, spacing_mm, z_first_mm)`` of a scan made into slabs of ``slice_mm``
    (``thick_slices``), as ``write_derived_set`` writes it."""
    thick, z_first = thick_slices(hu, np.asarray(z_mm, dtype=float), slice_mm)
    return f"{name}_thick{slice_mm:g}", thick, (slice_mm, *spacing_mm[1:]), z_first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder with labels.csv")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--slice-mm", type=float, default=5.0, help="thickness and spacing of the new slices")
    ap.add_argument("--on-thin-slices", action="store_true",
                    help="keep the thin slices, each holding its slab's mean (<name>_resliced<mm>)")
    ap.add_argument("--overwrite", action="store_true", help="replace the scans of a non-empty --out")
    args = ap.parse_args(argv)

    def thick(ct, r):
        if ct.spacing_mm[0] >= args.slice_mm:
            yield f"already {ct.spacing_mm[0]:.2f} mm slices; skipped"
            return
        z = np.asarray(ct.geometry.z_mm(range(ct.hu.shape[0])), dtype=float)
        if args.on_thin_slices:
            yield (f"{r['name']}_resliced{args.slice_mm:g}", thick_on_thin_slices(ct.hu, z, args.slice_mm),
                   ct.spacing_mm, float(z[0]))
        else:
            yield thick_version(r["name"], ct.hu, ct.spacing_mm, z, args.slice_mm)

    write_derived_set(args.data, args.out, thick, args.overwrite)
    return 0


if __name__ == "__main__":
    script_main(main)
