"""Crop real scans above the sacrum: can a model count to L3 from the ribs alone?

    python benchmarks/real_crops.py --data ../shared/data/real_val --out work/data/real_val_crops
    python tools/eval.py --experiment <run> --data work/data/real_val_crops --per-fold

For each positive scan of the annotation CSV (``labels.csv``) whose field of view reaches at
least 10 mm further down than ``--below`` mm under the L3 centre, writes the scan cut ``below`` mm under L3 (and
``--above`` mm over it) as ``<name>_crop<below>.nii.gz``, with a ``labels.csv`` of the same L3
labels. A cut 48 mm under L3 keeps L4 and the iliac crests and drops L5 and the sacrum, as a
liver or upper-abdomen scan does (ircad_07 of the real validation set is one); the L3 labels of
the originals hold unchanged, since only slices are dropped.

``--tops`` cuts the other end instead: the scan starts ``top`` mm over the L3 centre and keeps
everything below it (``<name>_top<top>.nii.gz``). 60 mm over L3 starts in L1, 100 mm in T12: a
lumbar-spine or renal protocol, or a crop of a longer scan; the first vertebra in the scan is
then not one a model may assume from the usual abdominal field of view.

    python benchmarks/real_crops.py --data ../shared/data/real_val --out work/data/real_val_tops --tops 60 100

These are the real validation scans, cut: evaluate on them, never train or choose thresholds on
them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.cli import script_main  # noqa: E402
from l3loc.errors import InputError  # noqa: E402
from l3loc.io.volume import read_volume, write_volume  # noqa: E402

LABEL_COLUMNS = ["l3_z_mm", "l3_top_z_mm", "l3_bottom_z_mm"]


def crop_z(ct, z_lo: float, z_hi: float):
    """(hu, z_first_mm) of the canonical slices whose centres lie in [z_lo, z_hi] (world mm)."""
    g = ct.geometry
    z = g.z_mm(range(ct.hu.shape[0]))
    keep = [i for i, zi in enumerate(z) if z_lo <= zi <= z_hi]
    return ct.hu[keep[0]:keep[-1] + 1], float(z[keep[0]])


def write_derived_set(data: Path, out: Path, derive, overwrite: bool = False) -> None:
    """For each positive scan of ``data/labels.csv``, write what ``derive(ct, label_row)`` makes of
    it (``(name, hu, spacing_mm, z_first_mm)`` per new scan, or a string saying why none) into
    ``out`` with a ``labels.csv`` of the original L3 labels (world z: slices are only dropped or
    regridded, so they hold); a new scan that is not the original's (a phantom matched to it)
    comes with its own labels as a fifth item (``LABEL_COLUMNS``' values). A non-empty ``out`` is
    refused before anything is read, unless ``overwrite``: then its scans of the same names are
    replaced."""
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "not empty (pass --overwrite to replace its scans)")
    if not (data / "labels.csv").is_file():
        raise InputError(data / "labels.csv", "not found")
    table = pd.read_csv(data / "labels.csv")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for _, r in table[table["negative"] == 0].iterrows():
        ct = read_volume(data / r["path"])
        for made in derive(ct, r):
            if isinstance(made, str):
                print(f"{r['name']}: {made}")
                continue
            name, hu, spacing, z_first, *own = made
            labels = own[0] if own else {c: r[c] for c in LABEL_COLUMNS}
            write_volume(out / f"{name}.nii.gz", hu, spacing, z_first_mm=z_first, overwrite=overwrite)
            rows.append({"name": name, "path": f"{name}.nii.gz", **labels, "negative": 0})
            print(f"{name}: {hu.shape[0]} slices of {spacing[0]:g} mm, "
                  f"{z_first - (hu.shape[0] - 1) * spacing[0]:.1f} to {z_first:.1f} mm")
    with atomic_path(out / "labels.csv", overwrite=overwrite) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    print(f"wrote {len(rows)} scans and labels.csv to {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a folder with labels.csv")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--below", type=float, nargs="+", default=[48.0, 70.0],
                    help="mm under the L3 centre to cut at (one crop each)")
    ap.add_argument("--above", type=float, default=195.0, help="mm over the L3 centre to keep")
    ap.add_argument("--tops", type=float, nargs="+", default=None,
                    help="instead: mm over the L3 centre where each crop starts (all below kept)")
    ap.add_argument("--overwrite", action="store_true", help="replace the scans of a non-empty --out")
    args = ap.parse_args()

    def under_l3(ct, r):
        z = ct.geometry.z_mm(range(ct.hu.shape[0]))
        for below in args.below:
            if min(z) > r["l3_z_mm"] - below - 10:
                yield f"ends {r['l3_z_mm'] - min(z):.0f} mm under L3; no crop at {below:g}"
                continue
            hu, z_first = crop_z(ct, r["l3_z_mm"] - below, r["l3_z_mm"] + args.above)
            yield f"{r['name']}_crop{below:g}", hu, ct.spacing_mm, z_first

    def over_l3(ct, r):
        z = ct.geometry.z_mm(range(ct.hu.shape[0]))
        for top in args.tops:
            if max(z) < r["l3_z_mm"] + top + 10:
                yield f"starts {max(z) - r['l3_z_mm']:.0f} mm over L3; no crop at {top:g}"
                continue
            hu, z_first = crop_z(ct, min(z), r["l3_z_mm"] + top)
            yield f"{r['name']}_top{top:g}", hu, ct.spacing_mm, z_first

    write_derived_set(args.data, args.out, over_l3 if args.tops else under_l3, args.overwrite)
    return 0


if __name__ == "__main__":
    script_main(main)
