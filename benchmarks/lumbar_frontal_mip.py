"""Lumbar vertebrae in the frontal MIP: a labelled real scan against phantoms of its slice
thickness and pixel size. How bright is the vertebral body, and the arch behind it (laminae,
articular and spinous processes), over the body's middle rows? How bright is each transverse
process near its root and at its tip, against its body's column? (Uniform bright process bars made
a "ladder" real spines do not show; arches painted as thin shells read as dim as the body, where a
real arch reads nearly four times brighter.)

    python benchmarks/lumbar_frontal_mip.py --real ../shared/data/real/tptbox_l3_crop --n 20

``--real`` is a folder with ``ct.nii.gz`` and a vertebra label map (``seg-vert_msk.nii.gz`` or
``spine_labels_verse_convention.nii.gz``; VerSe numbers, 20 = L1 ... 24 = L5). Per lumbar level
L2-L4:

- the body and the arch: over the body's middle rows (20-80 % of its height), the median within
  12 mm of the midline of the MIP of what lies in front of the body's back wall and of what lies
  behind it (the real scan: the labelled vertebra, split where its midline meets the canal; the
  phantoms: the whole volume, split at the body's planned depth);
- the body column (median of the MIP within 6 mm of the spine's centre) and, every 4 mm from 22
  to 42 mm out, the brightest row of the level (the process) over both sides, as a fraction of
  the body column. The real scan's MIP is of its labelled vertebra alone (no neighbour or kidney
  counts); the phantoms' MIP is of the whole volume over the slices within 8 mm of the process's
  height.

Evaluation only.
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
import SimpleITK as sitk  # noqa: E402

from l3loc.atomic import atomic_path  # noqa: E402
from l3loc.cli import script_main  # noqa: E402
from l3loc.errors import InputError  # noqa: E402
from l3loc.synth.anatomy import plan_case  # noqa: E402
from l3loc.synth.config import PRESETS  # noqa: E402
from l3loc.synth.phantom import geometry, render_volume  # noqa: E402

LEVELS = ("L2", "L3", "L4")
#: VerSe label of each lumbar level.
VERSE = {"L1": 20, "L2": 21, "L3": 22, "L4": 23, "L5": 24}
LABEL_FILES = ("seg-vert_msk.nii.gz", "spine_labels_verse_convention.nii.gz")
#: Distances out from the spine's centre (mm): L3's process reaches 40-48 mm.
DISTANCES_MM = (22, 26, 30, 34, 38, 42)
#: Half-width (mm) of the midline strip where the body and the arch are read.
ARCH_STRIP_MM = 12


def _strip_median(front_rows: np.ndarray, out_mm: np.ndarray) -> float:
    """Median of a MIP's rows within ``ARCH_STRIP_MM`` of the midline (-1000: nothing there)."""
    return float(np.median(front_rows[:, np.abs(out_mm) <= ARCH_STRIP_MM]))


def process_profile(front_rows: np.ndarray, out_mm: np.ndarray) -> dict:
    """The body column and, at each of ``DISTANCES_MM`` out from the spine's centre, the brightest
    row (the process) averaged over both sides, from the frontal MIP over a level's rows
    (``[rows, columns]``); ``out_mm`` is each column's signed distance from the centre."""
    process = front_rows.max(axis=0)
    res = {"body": float(np.median(front_rows[:, np.abs(out_mm) <= 6]))}
    for d in DISTANCES_MM:
        sides = [process[np.argmin(np.abs(out_mm - sg * d))] for sg in (-1, 1)
                 if np.abs(out_mm - sg * d).min() <= 1.0]
        if len(sides) < 2:
            raise InputError(None, f"the image does not reach {d} mm either side of the spine")
        res[d] = float(np.mean(sides))
    return res


def real_profiles(folder: Path) -> tuple[list[dict], float, float]:
    """Per level, the real scan's figures; and its slice thickness and pixel (mm)."""
    labels = next((folder / f for f in LABEL_FILES if (folder / f).exists()), None)
    if labels is None or not (folder / "ct.nii.gz").exists():
        raise InputError(folder, f"needs ct.nii.gz and a vertebra label map ({' or '.join(LABEL_FILES)})")
    # x left-right, y front to back, z along the body, whatever the file's own orientation
    img = sitk.DICOMOrient(sitk.ReadImage(str(folder / "ct.nii.gz")), "LPI")
    lab = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(labels)), "LPI"))
    hu = sitk.GetArrayFromImage(img).astype(np.float32)
    if lab.shape != hu.shape:
        raise InputError(labels, f"label map {lab.shape} is not on the CT's grid {hu.shape}")
    px, _, thick = img.GetSpacing()
    out = []
    for level in LEVELS:
        mask = lab == VERSE[level]
        if not mask.any():
            continue
        _, yy, xx = np.nonzero(mask)
        cx = float(np.median(xx[yy <= np.percentile(yy, 40)]))         # the body: its front part
        front = np.where(mask, hu, -1000.0).max(axis=1)                 # the vertebra alone
        rows = np.flatnonzero(mask.any(axis=(1, 2)))
        x = (np.arange(hu.shape[2]) - cx) * px
        try:
            res = process_profile(front[rows], x)
        except InputError as exc:
            raise InputError(folder / "ct.nii.gz", f"{level}: {exc.problem}") from None
        res.update(body_and_arch(mask, hu, int(round(cx)), x))
        # no figure beyond the label's reach on either side (a crop may cut the process)
        drawn = x[mask.any(axis=(0, 1))]
        res.update({d: np.nan for d in DISTANCES_MM if not (drawn.min() <= -d and drawn.max() >= d)})
        out.append({"source": "real", "level": level, **res})
    if not out:
        raise InputError(labels, f"no label of {', '.join(LEVELS)} ({', '.join(str(VERSE[v]) for v in LEVELS)})")
    return out, float(thick), float(px)


def body_and_arch(mask: np.ndarray, hu: np.ndarray, cx: int, out_mm: np.ndarray) -> dict:
    """The body and the arch of one labelled vertebra (``mask``, ``hu``: [z, y front to back,
    x]): its middle rows are 20-80 % of the body's height, the body's back wall the last labelled
    voxel before the canal's gap on the midline (NaN without a gap: the label map holds the body
    alone)."""
    zz, yy, _ = np.nonzero(mask[:, :, cx - 1:cx + 2])
    ys = np.unique(yy)
    gap = np.flatnonzero(np.diff(ys) > 1)
    if not len(gap):
        return {"front": np.nan, "arch": np.nan}
    back = ys[gap[0]]
    lo, hi = np.percentile(zz[yy <= back], [20, 80]).astype(int)
    y = np.arange(hu.shape[1])[None, :, None]
    rows = slice(lo, hi + 1)
    return {"front": _strip_median(np.where(mask & (y <= back), hu, -1000.0).max(axis=1)[rows], out_mm),
            "arch": _strip_median(np.where(mask & (y > back), hu, -1000.0).max(axis=1)[rows], out_mm)}


def phantom_profiles(n: int, seed: int, thickness_mm: float, pixel_mm: float) -> list[dict]:
    """The same figures on ``n`` phantoms with L3 in view (every other one of the ``varied``
    family), on the real scan's slices and pixels."""
    cfg = replace(PRESETS["default"], thickness_mm={round(thickness_mm, 3): 1.0}, inplane_mm=(pixel_mm, pixel_mm),
                  matrix=int(round(300 / pixel_mm)), fov_rates={"abdomen": 1.0}, scoliosis_rate=0.0,
                  lowres_rate=0.0)   # (a binned reconstruction would not be of the real scan's pixels)
    out, i = [], 0
    while len({r["source"] for r in out}) < n:
        if i > 50 * n:
            raise InputError(None, f"fewer than {n} of {i} phantoms of this acquisition hold L2-L4")
        plan = plan_case(seed, i, replace(cfg, anatomy="varied" if len(out) // len(LEVELS) % 2 else "default"))
        i += 1
        if not all(plan.slice_z_mm[-1] < plan.vertebra(v).z_bottom and plan.vertebra(v).z_top < plan.slice_z_mm[0]
                   for v in LEVELS) or plan.tilt_deg:
            continue
        hu, g, z = render_volume(plan), geometry(plan), np.asarray(plan.slice_z_mm)
        _, dy, dx = plan.acquired_spacing_mm
        x = (np.arange(hu.shape[2]) - (hu.shape[2] - 1) / 2) * dx
        y = (np.arange(hu.shape[1]) - (hu.shape[1] - 1) / 2) * dy
        front = hu.max(axis=1).astype(np.float32)
        for level in LEVELS:
            v = plan.vertebra(level)
            near = np.abs(z - (v.z_bottom + 0.55 * (v.z_top - v.z_bottom))) <= 8
            out_mm = x - float(g.sx(v.z_centre))
            res = process_profile(front[near], out_mm)
            mid = (z > v.z_bottom + 0.2 * (v.z_top - v.z_bottom)) & (z < v.z_bottom + 0.8 * (v.z_top - v.z_bottom))
            behind = (y - float(g.sy(v.z_centre)))[None, :, None]       # mm behind the body's axis
            part = lambda sel: _strip_median(np.where(sel, hu[mid], -1000).max(axis=1), out_mm)  # noqa: E731
            res.update(front=part(np.abs(behind) <= v.b), arch=part((behind > v.b + 1.5) & (behind < v.b + 45)))
            out.append({"source": f"{plan.name}_{plan.anatomy}", "level": level, **res})
    return out


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per level: the body and the arch (HU, and their ratio), the body column (HU) and the
    process at each distance as a fraction of it, the real scan's and the phantoms' median [p10,
    p90]."""
    rows = []
    for level, d in table.groupby("level"):
        real, ph = d[d["source"] == "real"], d[d["source"] != "real"]
        figures = [("body (in front of its back wall) HU", lambda t: t["front"]),
                   ("arch (behind it) HU", lambda t: t["arch"]),
                   ("arch / body", lambda t: t["arch"] / t["front"]),
                   ("body column HU", lambda t: t["body"]),
                   *((f"process at {c} mm / body", lambda t, c=c: t[c] / t["body"]) for c in DISTANCES_MM)]
        for name, of in figures:
            v_real, v_ph = of(real), of(ph)
            fmt = "{:.0f}" if name.endswith("HU") else "{:.2f}"
            q = v_ph.quantile([0.1, 0.5, 0.9]).to_numpy()
            rows.append({"level": level, "figure": name,
                         "real": fmt.format(v_real.mean()) if len(real) and v_real.notna().all() else "-",
                         "phantoms": f"{fmt.format(q[1])} [{fmt.format(q[0])}, {fmt.format(q[2])}]"})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="a folder with ct.nii.gz and a vertebra label map")
    ap.add_argument("--n", type=int, default=20, help="phantoms")
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--csv", type=Path, default=None, help="also write every process's figures here (a new file)")
    args = ap.parse_args(argv)
    real, thick, px = real_profiles(args.real)
    table = pd.DataFrame(real + phantom_profiles(args.n, args.seed, thick, px))
    if args.csv is not None:
        with atomic_path(args.csv, overwrite=False) as tmp:
            table.to_csv(tmp, index=False)
    print(f"{args.real} ({thick:g} mm slices, {px:g} mm pixels) against {args.n} phantoms of its acquisition")
    print(summary(table).to_string(index=False))
    return 0


if __name__ == "__main__":
    script_main(main)
