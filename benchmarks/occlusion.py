"""Which rows of a real scan make a model count where it does: erase the bone of one band of rows
at a time and watch each fold's L3 move.

    python benchmarks/occlusion.py --model l3loc/shipped/ft26-frontal-1 \
        --scan ../shared/data/real/totalseg_example_ct/ct.nii.gz --l3-z 316.3 \
        --out work/occlusion_totalseg.csv

For every band of ``--band-mm`` rows (every ``--step-mm``, over the whole scan) a copy of the
scan has its bone (> ``--bone-hu``) within ``--half-width-mm`` of the spine set to soft tissue
(30 HU): what a frontal net on a +-38 mm band sees of those rows is gone, the rest of the scan
stays. Each fold alone and the ensemble predict on the copy (the model's own decoder and
threshold, :func:`l3loc.localisation.localise`; L3's best row whatever the status, as
``l3loc eval --data`` scores it). One CSV row per band and fold: the band's centre
relative to L3 (mm, superior positive), status, confidence and the predicted L3 relative to the
truth. A fold whose L3 jumps by a vertebra when one band goes counts from that band.

``--view sagittal`` probes a run's sagittal nets instead (the same erased band: the sagittal slab
lies inside it).

``--beyond-mm D`` instead erases, in one copy, all bone more than D mm beside the spine from 5 mm
under L3's lower endplate down (the iliac wings and crests; the frontal nets' side mask keeps
+-38 mm).

``--ap-part`` erases only part of each band from front to back (the axial rows): ``front``, the
bone more than ``BODY_DEPTH_MM`` in front of the back of the vertebral body (aortic calcification,
contrast, costal cartilage, sternum); ``body``, the vertebral bodies (the ``BODY_DEPTH_MM`` in front
of their back); ``back``, everything behind it (pedicles, laminae, spinous processes, rib heads).
The back of the body is :func:`l3loc.preprocess.spine_ap_centre_px` on the scan's sagittal MIP, the
point the sagittal canvas is centred on. With ``--view sagittal`` it tells whether the bodies, the
arches or what lies in front of the spine set the count.

The spine's column is :func:`l3loc.mip.spine_lr_centre_px` (the sagittal slab's centre). Evaluation
only.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.cli import script_main  # noqa: E402
from l3loc.inference import load_localiser  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.localisation import localise  # noqa: E402
from l3loc.mip import mip, spine_lr_centre_px  # noqa: E402
from l3loc.preprocess import spine_ap_centre_px  # noqa: E402

SOFT_TISSUE_HU = 30
#: Front-to-back depth of a lumbar vertebral body, generous (30-40 mm in adults).
BODY_DEPTH_MM = 40.0
AP_PARTS = ("all", "front", "body", "back")


def erase(hu: np.ndarray, rows: np.ndarray, cols: np.ndarray, bone_hu: float,
          aps: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``hu`` whose bone in ``rows`` x ``aps`` x ``cols`` (boolean masks over slices,
    axial rows front to back and columns; ``aps`` None = every axial row) is soft tissue."""
    aps = np.ones(hu.shape[1], bool) if aps is None else aps
    out = hu.copy()
    index = np.ix_(rows, aps, cols)
    block = out[index]
    block[block > bone_hu] = SOFT_TISSUE_HU
    out[index] = block
    return out


def ap_part_mask(n_rows: int, row_mm: float, body_back_px: float, part: str) -> np.ndarray:
    """The axial rows (front to back) of ``part`` (:data:`AP_PARTS`), the body's back at
    ``body_back_px``."""
    y = np.arange(n_rows) * row_mm
    back = body_back_px * row_mm
    return {"all": np.ones(n_rows, bool), "front": y < back - BODY_DEPTH_MM,
            "body": (y >= back - BODY_DEPTH_MM) & (y <= back), "back": y > back}[part]


def predict_all(ct, localisers: dict) -> list[dict]:
    """Per localiser: status, confidence and L3's row, the best one whatever the status (as
    ``l3loc eval --data`` scores it)."""
    out = []
    for name, loc in localisers.items():
        _, decision, geom = localise(ct, loc)
        out.append(dict(folds=name, status=decision.status, confidence=decision.confidence,
                        l3_z_mm=float(geom.z_mm(decision.row))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a shipped-model, export or run folder")
    ap.add_argument("--scan", required=True)
    ap.add_argument("--l3-z", type=float, required=True, help="world z (mm) of L3's centre")
    ap.add_argument("--l3-bottom", type=float, help="world z of L3's lower endplate (--beyond-mm)")
    ap.add_argument("--out", required=True, help="CSV")
    ap.add_argument("--band-mm", type=float, default=15.0)
    ap.add_argument("--step-mm", type=float, default=7.5)
    ap.add_argument("--half-width-mm", type=float, default=60.0)
    ap.add_argument("--beyond-mm", type=float, help="erase bone beyond this distance under L3 instead")
    ap.add_argument("--bone-hu", type=float, default=150.0)
    ap.add_argument("--view", choices=("frontal", "sagittal"), default="frontal",
                    help="the nets whose count is probed")
    ap.add_argument("--ap-part", choices=AP_PARTS, default="all",
                    help="erase only the bone in front of the bodies, the bodies, or behind them")
    args = ap.parse_args(argv)

    ct = read_volume(args.scan)
    z = ct.geometry.z_mm(np.arange(ct.geometry.n_slices))
    col_mm = ct.spacing_mm[2]
    x = np.arange(ct.hu.shape[2]) * col_mm
    cx = spine_lr_centre_px(ct.hu, ct.spacing_mm) * col_mm
    body_back = spine_ap_centre_px(mip(ct.hu, "sagittal", ct.spacing_mm), ct.spacing_mm[1])
    aps = ap_part_mask(ct.hu.shape[1], ct.spacing_mm[1], body_back, args.ap_part)
    folds = load_localiser(args.model, view=args.view).views[args.view].folds
    localisers = {"ensemble": load_localiser(args.model, view=args.view)}
    localisers.update({f"fold {k}": load_localiser(args.model, view=args.view, folds=[k]) for k in folds})

    rows = [dict(band_centre_mm=np.nan, **r) for r in predict_all(ct, localisers)]   # untouched
    if args.beyond_mm is not None:
        if args.l3_bottom is None:
            ap.error("--beyond-mm needs --l3-bottom")
        hu = erase(ct.hu, z < args.l3_bottom - 5, np.abs(x - cx) > args.beyond_mm, args.bone_hu)
        rows += [dict(band_centre_mm=-np.inf, **r) for r in predict_all(replace(ct, hu=hu), localisers)]
    else:
        near = np.abs(x - cx) <= args.half_width_mm
        for zc in np.arange(z.max() - args.band_mm / 2, z.min(), -args.step_mm):
            band = np.abs(z - zc) <= args.band_mm / 2
            hu = erase(ct.hu, band, near, args.bone_hu, aps)
            rows += [dict(band_centre_mm=zc - args.l3_z, **r) for r in predict_all(replace(ct, hu=hu), localisers)]
    table = pd.DataFrame(rows)
    table["l3_offset_mm"] = table["l3_z_mm"] - args.l3_z
    with atomic_path(args.out, overwrite=False) as tmp:
        table.to_csv(tmp, index=False, float_format="%.2f")
    print(f"spine column {cx:.0f} mm, back of the bodies {body_back * ct.spacing_mm[1]:.0f} mm from the front; "
          f"{len(table)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    script_main(main)
