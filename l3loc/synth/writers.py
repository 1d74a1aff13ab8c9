"""Write a synthetic dataset: the paper's ``l3_dataset.npz`` (MIPs made by
:func:`l3loc.preprocess.mip`), ``ground_truth.json``, optionally NIfTI volumes, DICOM series and
the annotation CSV of :mod:`l3loc.io.annotations`, and a preview montage.

Output folder layout::

    l3_dataset.npz        images_f, images_s (int16 HU), ydata {annotator_1, annotator_2},
                          names, spacings, negative, plus ground truth arrays (see EXTRA_KEYS)
    ground_truth.json     per case: CasePlan.ground_truth() (+ the file slice index when written)
    volumes/<name>.nii.gz first ``n_volumes`` cases (read_volume returns them unchanged; a
                          gantry-tilted case's NIfTI holds its tilted slices stacked upright,
                          as a converter that cannot store a shear leaves them)
    dicom/<name>/         the first ``n_dicom`` of those also as DICOM series (a tilted case's
                          with its tilt in ImageOrientationPatient: read de-sheared)
    annotations.csv       path, l3_z_mm, negative, the other levels' z (t12_z_mm, l1_z_mm, ...;
                          empty where absent) and transitional for every volume and series
    preview.png           frontal + sagittal MIPs of the first ``n_preview`` cases with the L3 line
"""
from __future__ import annotations

import json
import logging
import os
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from l3loc.atomic import atomic_path, write_text
from l3loc.io.npz import L3Dataset, write_l3_npz
from l3loc.levels import LEVELS, column_name
from l3loc.mip import mip
from l3loc.synth.anatomy import plan_case
from l3loc.synth.config import PRESETS, SynthConfig
from l3loc.synth.phantom import render_volume, tilt_pivot_y_mm

log = logging.getLogger("l3loc")

#: Two simulated annotators: each picks the L3 centre with an independent error of this standard
#: deviation (mm), so their median disagreement is 1 mm (0.674 * sqrt(2) * 1.05), as in the paper.
ANNOTATOR_SD_MM = 1.05
#: Ground-truth arrays stored in the npz beside the paper's keys.
#: ``level_rows`` (n, len(LEVELS)): each level's native MIP row, NaN where the spine has no such
#: level or it is outside the field of view (``l3loc.levels`` defines the levels);
#: ``transitional``: not 5 lumbar vertebrae (counting from the ribs and the sacrum disagree).
EXTRA_KEYS = ("fov_type", "n_lumbar", "n_rib_pairs", "short_12th_rib", "contrast", "metal", "arms",
              "l3_z_mm", "l3_slice_true", "z_first_mm", "level_rows", "transitional",
              "sagittal_slab_mm")
#: Half-width of the sagittal MIP slab (mm) of the images written; stored with every case so a
#: config with another ``preprocess.sagittal_slab_mm`` is refused (l3loc.cache.check_npz_slab).
SAGITTAL_SLAB_MM = 20.0


def case_mips(hu: np.ndarray, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """Frontal and sagittal MIPs of a canonical volume, int16 HU (the values of an int16 volume's
    MIP are integers, so the cast is exact and halves the dataset's size)."""
    return (mip(hu, "frontal", spacing_mm).astype(np.int16),
            mip(hu, "sagittal", spacing_mm, SAGITTAL_SLAB_MM).astype(np.int16))


def annotator_rows(gt: dict, seed: int, index: int) -> dict[str, float]:
    """L3 rows (native MIP row = canonical slice) picked by the two simulated annotators."""
    if gt["negative"]:
        return {"annotator_1": float("nan"), "annotator_2": float("nan")}
    rng = np.random.default_rng([seed, index, 2])
    err = rng.normal(0.0, ANNOTATOR_SD_MM, 2) / gt["spacing_mm"][0]
    return {"annotator_1": gt["l3_slice"] + float(err[0]), "annotator_2": gt["l3_slice"] + float(err[1])}


_scratch = {"buffer": np.empty(0, dtype=np.int16)}   # per process: reused volume memory


def _make_case(job: tuple) -> dict:
    """Worker: plan, render, project; write the volume / DICOM series when asked."""
    seed, index, config, vol_path, dicom_dir = job
    plan = plan_case(seed, index, config)
    size = int(np.prod(plan.shape))
    if _scratch["buffer"].size < size:
        _scratch["buffer"] = np.empty(size, dtype=np.int16)
    hu = render_volume(plan, buffer=_scratch["buffer"])
    gt = plan.ground_truth()
    spacing, shape = plan.acquired_spacing_mm, plan.acquired_shape
    img_f, img_s = case_mips(hu, spacing)
    files = {}
    origin_xy = (-(shape[2] - 1) / 2 * spacing[2], -(shape[1] - 1) / 2 * spacing[1])
    if vol_path is not None:
        from l3loc.io.volume import write_volume
        write_volume(vol_path, hu, spacing, z_first_mm=plan.z_first_mm, origin_xy_mm=origin_xy)
        files["volume"] = str(vol_path)
        # write_volume stores slice k = 0 as the most inferior one
        gt["l3_file_slice"] = None if gt["negative"] else shape[0] - 1 - gt["l3_slice"]
    if dicom_dir is not None:
        from l3loc.io.dicom import write_dicom_series
        # a tilted case's series carries its tilt, as a scanner's does, so reading it de-shears it
        write_dicom_series(dicom_dir, hu, spacing, z_first_mm=plan.z_first_mm, origin_xy_mm=origin_xy,
                           patient_name=f"L3LOC^{plan.name}", slice_thickness_mm=plan.slice_thickness_mm,
                           gantry_tilt_deg=plan.tilt_deg,
                           tilt_pivot_y_mm=tilt_pivot_y_mm(plan) if plan.tilt_deg else 0.0)
        files["dicom"] = str(dicom_dir)
    return {"gt": gt, "img_f": img_f, "img_s": img_s, "rows": annotator_rows(gt, seed, index), "files": files}


def _dataset(records: list[dict]) -> L3Dataset:
    gts = [r["gt"] for r in records]
    extra = {
        "fov_type": np.array([g["fov_type"] for g in gts], dtype=str),
        "n_lumbar": np.array([g["n_lumbar"] for g in gts], dtype=np.int8),
        "n_rib_pairs": np.array([g["n_rib_pairs"] for g in gts], dtype=np.int8),
        "short_12th_rib": np.array([g["short_12th_rib"] for g in gts], dtype=np.int8),
        "contrast": np.array([g["contrast"] for g in gts], dtype=np.int8),
        "metal": np.array([g["metal"] for g in gts], dtype=str),
        "arms": np.array([g["arms"] for g in gts], dtype=str),
        "l3_z_mm": np.array([g["l3_z_mm"] for g in gts], dtype=np.float64),
        "l3_slice_true": np.array([np.nan if g["negative"] else g["l3_slice"] for g in gts], dtype=np.float64),
        "z_first_mm": np.array([g["z_first_mm"] for g in gts], dtype=np.float64),
        "level_rows": np.array([[np.nan if g["level_slices"].get(k) is None else g["level_slices"][k]
                                 for k in LEVELS] for g in gts], dtype=np.float64).reshape(len(gts), len(LEVELS)),
        "transitional": np.array([g["transitional"] for g in gts], dtype=np.int8),
        "sagittal_slab_mm": np.full(len(gts), SAGITTAL_SLAB_MM),
    }
    # the paper's spacings: [0] in-plane (column), [1] in-plane (row), [2] slice thickness
    spacings = np.array([[g["spacing_mm"][2], g["spacing_mm"][1], g["spacing_mm"][0]] for g in gts])
    return L3Dataset(
        names=[g["name"] for g in gts],
        images_f=[r["img_f"] for r in records], images_s=[r["img_s"] for r in records],
        spacings=spacings,
        ydata={k: np.array([r["rows"][k] for r in records]) for k in ("annotator_1", "annotator_2")},
        negative=np.array([g["negative"] for g in gts], dtype=bool), extra=extra)


def write_preview(path, records: list[dict], n: int) -> None:
    """PNG montage: per case the frontal and sagittal MIP at the bone window [100, 1500] HU,
    rows scaled to mm, with the true L3 line (red) or "no L3" for negative cases."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = records[:n]
    per_row = min(len(recs), 4)                    # cases per montage row (2 panels each)
    n_rows = -(-len(recs) // per_row)
    fig, axes = plt.subplots(n_rows, 2 * per_row, figsize=(2.4 * 2 * per_row, 6.0 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for j, r in enumerate(recs):
        g = r["gt"]
        for k, (img, view) in enumerate(((r["img_f"], "F"), (r["img_s"], "S"))):
            ax = axes[j // per_row, 2 * (j % per_row) + k]
            ax.imshow(img, cmap="gray", vmin=100, vmax=1500, interpolation="bilinear",
                      aspect=g["spacing_mm"][0] / g["spacing_mm"][1])
            if not g["negative"]:
                ax.axhline(g["l3_slice"], color="red", lw=0.8)
            flags = f"L{g['n_lumbar']} R{g['n_rib_pairs']}" + (" short" if g["short_12th_rib"] else "")
            ax.set_title(f"{g['index']} {view} {g['fov_type'][:12]}\n{flags}"
                         + (" no L3" if g["negative"] else ""), fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def generate_dataset(out_dir, n: int, seed: int = 0, preset: str | SynthConfig = "default",
                     workers: int = 2, n_preview: int = 0, n_volumes: int = 0, n_dicom: int = 2,
                     overwrite: bool = False, progress: bool = False) -> Path:
    """Generate ``n`` phantoms into ``out_dir`` (layout in the module docstring).

    Case ``i`` depends only on ``(seed, i)`` and the preset, never on ``workers``.

    Args:
        out_dir: output folder; must not exist or be empty unless ``overwrite``.
        n: number of cases.
        seed: dataset seed.
        preset: a name in :data:`l3loc.synth.config.PRESETS` or a config.
        workers: processes (1 = in this process).
        n_preview: cases in ``preview.png`` (0 = none).
        n_volumes: first cases also written as NIfTI, listed in ``annotations.csv``.
        n_dicom: of those, how many also as DICOM series.
        overwrite: replace existing outputs.
        progress: show a progress bar.

    Returns:
        Path of the written ``l3_dataset.npz``.

    Raises:
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    config = PRESETS[preset] if isinstance(preset, str) else preset
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty (use --overwrite to replace its dataset)")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out.mkdir(parents=True, exist_ok=True)
    n_volumes = min(n_volumes, n)
    n_dicom = min(n_dicom, n_volumes)
    names = [plan_case(seed, i, config).name for i in range(n_volumes)]
    jobs = [(seed, i, config,
             out / "volumes" / f"{names[i]}.nii.gz" if i < n_volumes else None,
             out / "dicom" / names[i] if i < n_dicom else None) for i in range(n)]
    for i in range(n_dicom):
        if jobs[i][4].exists():  # a DICOM folder cannot be replaced file by file safely
            import shutil
            shutil.rmtree(jobs[i][4])
    if workers > 1:
        ctx = get_context("fork" if os.name == "posix" else "spawn")
        with ctx.Pool(workers) as pool:
            records = _collect(pool.imap(_make_case, jobs, chunksize=1), n, progress)
            # let the workers exit on their own: the context's terminate() sends them SIGTERM,
            # which Paddle's signal handler (imported with the CLI) reports as a fatal error
            pool.close()
            pool.join()
    else:
        records = _collect(map(_make_case, jobs), n, progress)

    npz_path = out / "l3_dataset.npz"
    write_l3_npz(npz_path, _dataset(records), overwrite=True)
    write_text(out / "ground_truth.json", json.dumps([r["gt"] for r in records], indent=1))
    if n_volumes:
        _write_annotations(out, records[:n_volumes])
    if n_preview:
        write_preview(out / "preview.png", records, n_preview)
    neg = sum(r["gt"]["negative"] for r in records)
    log.info(f"[SYNTH] {n} cases ({neg} negative) -> {npz_path}")
    return npz_path


def _collect(results, n: int, progress: bool) -> list[dict]:
    """The cases, in order; a bar at a terminal, else a log line at every tenth of them (a run
    of 1000 takes a quarter of an hour: a log file should show where it is)."""
    if progress:
        from tqdm import tqdm
        return list(tqdm(results, total=n, desc="phantoms", unit="case"))
    out, start, step = [], time.monotonic(), max(1, n // 10)
    for i, record in enumerate(results, 1):
        out.append(record)
        if i % step == 0 and i < n:
            spent = time.monotonic() - start
            log.info(f"[SYNTH] {i}/{n} cases in {spent / 60:.1f} min, about "
                     f"{spent * (n - i) / i / 60:.1f} min left")
    return out


def _write_annotations(out: Path, records: list[dict]) -> None:
    import pandas as pd

    from l3loc.io.annotations import write_annotations

    rows = []
    for r in records:
        g = r["gt"]
        for kind in ("volume", "dicom"):
            if kind in r["files"]:
                row = {"name": g["name"] + ("_dicom" if kind == "dicom" else ""),
                       "path": str(Path(r["files"][kind]).absolute()),
                       "l3_z_mm": np.nan if g["negative"] else g["l3_z_mm"],
                       "negative": int(g["negative"]), "transitional": int(g["transitional"])}
                # the other levels whose centre lies in the scan (empty = absent); a level whose
                # body the scan only grazes is "in the field of view" of the ground truth but has
                # no slice of its own, which an annotation must name
                n_slices = g["shape"][0]
                for k in LEVELS:
                    if k != "L3":
                        c = g["level_slices"].get(k)
                        inside = c is not None and -0.5 <= c <= n_slices - 0.5
                        row[column_name(k, "l3_z_mm")] = g["levels_z_mm"][k] if inside else np.nan
                rows.append(row)
    write_annotations(out / "annotations.csv", pd.DataFrame(rows), overwrite=True)
