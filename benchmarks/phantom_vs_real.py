"""Phantom MIPs against real ones, in numbers, on the network's input (issue 11).

    python benchmarks/phantom_vs_real.py --real-val ../shared/data/real_val --real ../shared/data/real

Every labelled positive real scan and, per scan, ``--n`` phantoms of the same acquisition
(``side_by_side.matching_phantom``: thickness, pixel, matrix, nearest length, L3 in view) go
through ``preprocess_volume`` with the ``cpu_fast`` config (the prediction path: window
[100, 1500] HU -> [0, 1], 2 mm pixels, side mask, sagittal slab). Measured on those images:

- ``body/disc``: along the band's row profile (mean over the band's columns), the mean of each
  known lumbar body's middle half over the minimum in the disc next to it (vertebral
  periodicity; 1 = no visible disc). ``disc_mm``: width of that dip below halfway between the
  two. Known bodies: every T12..L5 of the label map of ``totalseg_example`` and of a phantom's
  plan, L3 alone (``labels.csv`` top/bottom) for the other real scans.
- ``core/rim``: in the sagittal image, a lumbar body's cancellous middle over its anterior
  cortex and endplates (the brightest pixel of each), 1 = a uniform box.
- ``ribs/spine``, ``pelvis/spine``: 99th percentile of the frontal image without side mask
  beside the spine (|x| 40..130 mm) at 90..130 mm above L3's centre (lowest ribs) and
  70..120 mm below it (iliac wings), over that of the spine column at L1..L4.
- ``arch/body``: in the sagittal image, 60 mm above and below L3's centre, 99th percentile of the
  columns 15..50 mm behind the canvas centre (the back of the vertebral bodies: laminae and
  spinous processes) over that of the columns 5..40 mm in front of it (the bodies).
- ``>0.1``, ``>0.3``: fraction of the canvas (both views) above 0.1 and 0.3 (bone and clutter).
- ``noise``, ``ac1``: standard deviation of the high-pass residual (image minus its 1.5 px
  Gaussian) in the sagittal lumbar band and that residual's lag-1 row autocorrelation (grain).

Prints one row per image and the real range against the phantom range.

``--thick-mm 5``: every real scan and its matching phantoms (the same cases as without it) are
first made into contiguous slabs of that thickness the way ``benchmarks/real_thick.py`` makes
the real 5 mm set (a box slice profile): like against like. Matching phantoms rendered at 5 mm
directly are other cases (``--real-val work/data/real_val_thick5``), and case-to-case spread then
hides what thick slices do (ninth session: the lowest ribs' fade).

``--coarse-mm 4.4``: the same, and in-plane too: slabs of that thickness, then the smoothing and
binning a low-resolution reconstruction applies (``acquisition.reconstruct_coarse``, the
generator's own, binning ``round(mm / pixel)``): every scan made into a PET/CT's voxels, to ask
whether fine real scans lose their posterior elements at 4.4 mm as gate_wholebody shows them.

``--overlap 2``: the matching phantoms' slices are that many times thicker than their spacing (an
overlapping reconstruction; 1 = contiguous); the same cases otherwise, so runs with different
values compare like for like. Without it, as the generator draws.
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

from l3loc.config import load_config, resolve_config  # noqa: E402
from l3loc.io.volume import read_volume  # noqa: E402
from l3loc.preprocess import band_col_range, preprocess_volume, side_mask_cols  # noqa: E402
from l3loc.preprocess_config import PreprocessConfig  # noqa: E402
from l3loc.synth.acquisition import reconstruct_coarse  # noqa: E402
from real_thick import thick_slices  # noqa: E402
from side_by_side import matching_phantom, real_scans  # noqa: E402

LUMBAR = ("L1", "L2", "L3", "L4", "L5")
#: VerSe label of each level in spine_labels_verse_convention.nii.gz
VERSE = {"T12": 19, "L1": 20, "L2": 21, "L3": 22, "L4": 23, "L5": 24}
COLS = ("S body/disc", "F body/disc", "disc_mm", "core/rim", "ribs/spine", "pelvis/spine", "arch/body", ">0.1", ">0.3",
        "noise", "ac1")


def band_profile(img: np.ndarray, cfg: PreprocessConfig, view: str) -> np.ndarray:
    c0, c1 = side_mask_cols(img.shape[1], band_col_range(cfg, view))
    return img[:, c0:c1].mean(axis=1)


def periodicity(profile: np.ndarray, bodies: dict, mm: float) -> tuple[float, float]:
    """Mean body/disc ratio and disc dip width (mm) over the known bodies {name: (top, bottom) rows}."""
    ratios, widths = [], []
    for top, bot in bodies.values():
        h = bot - top
        mid = profile[int(round(top + 0.25 * h)):int(round(bot - 0.25 * h)) + 1]
        if mid.size == 0 or h < 3:
            continue
        body = float(mid.mean())
        for lo, hi in ((top - 8.0 / mm, top + 0.2 * h), (bot - 0.2 * h, bot + 8.0 / mm)):
            lo, hi = max(int(round(lo)), 0), min(int(round(hi)) + 1, len(profile))
            if hi - lo < 2:
                continue
            seg = profile[lo:hi]
            dmin = float(seg.min())
            ratios.append(body / max(dmin, 1e-3))
            k = lo + int(seg.argmin())
            half = 0.5 * (body + dmin)
            a = b = k
            while a > 0 and profile[a - 1] < half:
                a -= 1
            while b < len(profile) - 1 and profile[b + 1] < half:
                b += 1
            widths.append((b - a + 1) * mm if body > dmin * 1.05 else 0.0)
    return (float(np.median(ratios)) if ratios else np.nan, float(np.median(widths)) if widths else np.nan)


def core_rim(sag: np.ndarray, bodies: dict, cfg: PreprocessConfig) -> float:
    """Median over lumbar bodies of (core mean) / (rim max) in the sagittal image."""
    c0, c1 = side_mask_cols(sag.shape[1], band_col_range(cfg, "sagittal"))
    out = []
    for name, (top, bot) in bodies.items():
        if name not in LUMBAR:
            continue
        r0, r1 = int(round(top)), int(round(bot))
        if r1 - r0 < 6:
            continue
        box = sag[r0:r1 + 1, c0:c1]
        col_mean = box[2:-2].mean(axis=0)
        if col_mean.max() < 0.05:
            continue
        # the anterior wall: the first column (anterior -> posterior) reaching half the brightest
        ant = int(np.argmax(col_mean >= 0.5 * col_mean.max()))
        depth = max(int(round(30.0 / cfg.spacing_mm)), 6)      # a lumbar body is ~30-35 mm deep
        core = box[int(0.3 * len(box)):int(0.7 * len(box)) + 1, ant + depth // 4: ant + 3 * depth // 4]
        rim_ant = box[2:-2, max(ant - 1, 0):ant + 3].max(axis=1).mean()
        plates = np.concatenate([box[:3, ant:ant + depth].max(axis=0), box[-3:, ant:ant + depth].max(axis=0)]).mean()
        rim = 0.5 * (rim_ant + plates)
        if core.size and rim > 0.02:
            out.append(float(core.mean()) / float(rim))
    return float(np.median(out)) if out else np.nan


def rows_around(img: np.ndarray, l3_row: float, lo_mm: float, hi_mm: float, mm: float) -> tuple[int, int]:
    """Row range [r0, r1) from ``lo_mm`` to ``hi_mm`` below L3's row (negative: above), clipped
    to the image."""
    return int(max(l3_row + lo_mm / mm, 0)), int(min(l3_row + hi_mm / mm, img.shape[0]))


def column_mm(img: np.ndarray, mm: float) -> np.ndarray:
    """Position of each column from the canvas centre (mm)."""
    return (np.arange(img.shape[1]) - img.shape[1] // 2) * mm


def lateral_ratio(front: np.ndarray, l3_row: float, bodies: dict, cfg: PreprocessConfig) -> tuple[float, float]:
    mm = cfg.spacing_mm
    x = column_mm(front, mm)
    side = (np.abs(x) >= 40) & (np.abs(x) <= 130)
    col = np.abs(x) <= 20
    rows = [r for n, (t, b) in bodies.items() if n in ("L1", "L2", "L3", "L4") for r in range(int(t), int(b) + 1)]
    if not rows:   # only L3 known: a lumbar stretch around it
        rows = range(int(l3_row - 60 / mm), int(l3_row + 60 / mm))
    rows = [r for r in rows if 0 <= r < front.shape[0]]
    spine = np.percentile(front[rows][:, col], 99) if rows else np.nan

    def region(lo_mm, hi_mm):
        r0, r1 = rows_around(front, l3_row, lo_mm, hi_mm, mm)
        if r1 - r0 < 3:
            return np.nan
        return float(np.percentile(front[r0:r1][:, side], 99) / max(spine, 1e-3))

    return region(-130, -90), region(70, 120)


def arch_body(sag: np.ndarray, l3_row: float, cfg: PreprocessConfig) -> float:
    """Posterior elements over vertebral bodies in the sagittal image (the canvas centre is the
    back of the bodies: ``preprocess``'s spine-centred sagittal canvas)."""
    mm = cfg.spacing_mm
    x = column_mm(sag, mm)
    r0, r1 = rows_around(sag, l3_row, -60, 60, mm)
    if r1 - r0 < 3:
        return np.nan
    body = np.percentile(sag[r0:r1][:, (x >= -40) & (x <= -5)], 99)
    return float(np.percentile(sag[r0:r1][:, (x >= 15) & (x <= 50)], 99) / max(body, 1e-3))


def noise(sag: np.ndarray, l3_row: float, cfg: PreprocessConfig) -> tuple[float, float]:
    c0, c1 = side_mask_cols(sag.shape[1], band_col_range(cfg, "sagittal"))
    r0, r1 = rows_around(sag, l3_row, -60, 60, cfg.spacing_mm)
    box = sag[r0:r1, c0:c1]
    res = box - gaussian_filter(box, 1.5)
    m = gaussian_filter(box, 1.5) > 0.05     # inside bone (below the window all is 0 and flat)
    if m.sum() < 20:
        return np.nan, np.nan
    a, b = res[:-1][m[:-1] & m[1:]], res[1:][m[:-1] & m[1:]]
    return float(res[m].std()), float(np.corrcoef(a, b)[0, 1])


def measure(ct, l3_slice: float, bodies_slices: dict, cfg: PreprocessConfig) -> dict:
    """All measures of one volume; ``bodies_slices``: {name: (top, bottom) canonical slices}."""
    sag = preprocess_volume(ct, "sagittal", l3_slice, cfg)
    front = preprocess_volume(ct, "frontal", l3_slice, cfg)
    front_open = preprocess_volume(ct, "frontal", l3_slice, replace(cfg, side_mask=False))
    geo = sag.geometry
    bodies = {n: tuple(float(geo.processed_row(s)) for s in ts) for n, ts in bodies_slices.items()}
    bodies = {n: (t, b) for n, (t, b) in bodies.items() if t >= 0 and b < sag.image.shape[0] - 1}   # whole in view
    mm = cfg.spacing_mm
    bd_s, w_s = periodicity(band_profile(sag.image, cfg, "sagittal"), bodies, mm)
    bd_f, w_f = periodicity(band_profile(front.image, cfg, "frontal"), bodies, mm)
    ribs, pelvis = lateral_ratio(front_open.image, sag.label_row_px, bodies, cfg)
    both = np.concatenate([sag.image.ravel(), front.image.ravel()])
    nz, ac = noise(sag.image, sag.label_row_px, cfg)
    return {"S body/disc": bd_s, "F body/disc": bd_f, "disc_mm": 0.5 * (w_s + w_f),
            "core/rim": core_rim(sag.image, bodies, cfg), "ribs/spine": ribs, "pelvis/spine": pelvis,
            "arch/body": arch_body(sag.image, sag.label_row_px, cfg),
            ">0.1": float((both > 0.1).mean()), ">0.3": float((both > 0.3).mean()), "noise": nz, "ac1": ac}


def real_bodies(scan: dict, ct, real_val: Path, real: Path) -> dict:
    """{level: (top, bottom) canonical slices} of the real scan's known bodies."""
    labels = scan["path"].parent / "spine_labels_verse_convention.nii.gz"
    if labels.exists():
        lab = read_volume(labels).hu
        out = {}
        for name, v in VERSE.items():
            zz, yy, _ = np.nonzero(lab == v)
            if zz.size == 0:
                continue
            body = yy <= np.percentile(yy, 40)     # the anterior part of the label: the body
            out[name] = (float(zz[body].min()) - 0.5, float(zz[body].max()) + 0.5)
        return out
    import pandas as pd
    row = pd.read_csv(real_val / "labels.csv").set_index("name").loc[scan["name"]]
    a, b = (float(ct.geometry.canonical_from_z(z)) for z in (row.l3_top_z_mm, row.l3_bottom_z_mm))
    return {"L3": (min(a, b), max(a, b))}


def phantom_bodies(plan) -> dict:
    t = plan.spacing_mm[0]
    ext = plan.level_extents()
    return {n: ((plan.z_top_mm - ext[n][0]) / t, (plan.z_top_mm - ext[n][1]) / t)
            for n in ("T12",) + LUMBAR if n in ext}


def thickened(vol, l3_slice: float, bodies: dict, mm: float | None):
    """(volume, L3 slice, bodies) with the volume's slices made into slabs of ``mm`` (as the
    real 5 mm set is made), canonical slice positions carried over; all unchanged when ``mm``
    is None or not thicker than the slices."""
    t = float(vol.spacing_mm[0])
    if mm is None or mm <= t:
        return vol, l3_slice, bodies
    thick, _ = thick_slices(vol.hu, -t * np.arange(vol.hu.shape[0]), mm)
    # canonical slice s (centre at index s) lies (s + 0.5) * t below the top edge
    to_thick = lambda s: (s + 0.5) * t / mm - 0.5
    return (SimpleNamespace(hu=thick, spacing_mm=(mm, *vol.spacing_mm[1:]), geometry=None), to_thick(l3_slice),
            {n: (to_thick(a), to_thick(b)) for n, (a, b) in bodies.items()})


def coarsened(vol, l3_slice: float, bodies: dict, mm: float | None):
    """:func:`thickened`, then in-plane smoothing and binning to about ``mm`` pixels (the
    generator's low-resolution reconstruction); unchanged when ``mm`` is None."""
    vol, l3_slice, bodies = thickened(vol, l3_slice, bodies, mm)
    if mm is None:
        return vol, l3_slice, bodies
    binning = max(1, round(mm / float(vol.spacing_mm[1])))
    hu = reconstruct_coarse(np.asarray(vol.hu).astype(np.int16), binning)
    return (SimpleNamespace(hu=hu, spacing_mm=(vol.spacing_mm[0], *(s * binning for s in vol.spacing_mm[1:])),
                            geometry=None), l3_slice, bodies)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-val", type=Path, default=ROOT.parent / "shared" / "data" / "real_val")
    ap.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    ap.add_argument("--n", type=int, default=2, help="phantoms per real scan (seeds 0..n-1)")
    ap.add_argument("--style", default="default")
    ap.add_argument("--thick-mm", type=float, default=None,
                    help="make real scans and their phantoms into slabs this thick first (see above)")
    ap.add_argument("--coarse-mm", type=float, default=None,
                    help="make them into slabs and pixels about this size first (see above)")
    ap.add_argument("--overlap", type=float, default=None,
                    help="phantom slice thickness over spacing (see above)")
    args = ap.parse_args()
    overrides = None if args.overlap is None else {"overlap_rate": 1.0, "overlap": (args.overlap, args.overlap)}
    if args.thick_mm and args.coarse_mm:
        ap.error("--thick-mm and --coarse-mm: one at a time (--coarse-mm makes slabs too)")
    mm, made = (args.coarse_mm, coarsened) if args.coarse_mm else (args.thick_mm, thickened)
    cfg = PreprocessConfig.from_dict(load_config(resolve_config("cpu_fast"))["preprocess"])
    rows = []
    for scan in real_scans(args.real_val, args.real):
        if scan["l3_z_mm"] is None:
            continue   # negatives and unlabelled scans: no lumbar reference
        ct = read_volume(scan["path"])
        l3 = float(ct.geometry.canonical_from_z(scan["l3_z_mm"]))
        suffix = f"@{mm:g}mm" + ("^3" if args.coarse_mm else "") if mm else ""
        rows.append(("real", scan["name"] + suffix, measure(
            *made(ct, l3, real_bodies(scan, ct, args.real_val, args.real), mm), cfg)))
        for seed in range(args.n):
            plan, hu = matching_phantom(ct, True, args.style, seed, overrides)
            ph = SimpleNamespace(hu=hu, spacing_mm=plan.acquired_spacing_mm, geometry=None)
            rows.append(("phantom", f"{plan.name}~{scan['name']}{suffix}", measure(
                *made(ph, plan.ground_truth()["l3_slice"], phantom_bodies(plan), mm), cfg)))
    head = f"| {'image':38s} | " + " | ".join(f"{c:>12s}" for c in COLS) + " |"
    print(head)
    print("|" + "-" * 40 + "|" + "|".join("-" * 14 for _ in COLS) + "|")
    for kind, name, m in rows:
        print(f"| {kind[0].upper()} {name:36s} | " + " | ".join(f"{m[c]:12.3f}" for c in COLS) + " |")
    for kind in ("real", "phantom"):
        vals = {c: [m[c] for k, _, m in rows if k == kind and np.isfinite(m[c])] for c in COLS}
        print(f"| {kind + ' range':38s} | " + " | ".join(
            f"{min(v):5.2f}..{max(v):5.2f}" if v else f"{'-':>12s}" for v in vals.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
