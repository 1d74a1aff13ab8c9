"""Pictures for a person to check predictions: QC PNG, axial slice PNG, the order of review
(the review page itself: ``l3loc.review``)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from l3loc.atomic import atomic_path

#: Display window of the MIPs in the QC picture (HU): air to dense cortical bone.
QC_MIP_WINDOW_HU = (-200.0, 1300.0)
#: The soft-tissue window used to read muscle and fat (width 400, level 40).
SOFT_TISSUE_WINDOW_HU = (40.0 - 200.0, 40.0 + 200.0)
#: Review order of statuses on the review page: what needs a person's eyes first.
REVIEW_ORDER = ("error", "not_found", "ambiguous", "found")
_STATUS_COLOURS = {"found": "#1b7f3b", "ambiguous": "#c07000", "not_found": "#b00020",
                   "error": "#555555"}


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def window_to_uint8(image_hu: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] HU and map linearly to 0..255 (uint8), any shape."""
    scaled = (np.asarray(image_hu, dtype=np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def write_axial_png(path: str | os.PathLike, slice_hu: np.ndarray,
                    pixel_mm: tuple[float, float]) -> Path:
    """One axial slice [rows A->P, cols R->L] as a soft-tissue-window (W400/L40) grey PNG.

    Anterior is at the top and the patient's right on the image's left (radiological view, as
    the canonical orientation). Non-square pixels are resampled along rows so that the picture
    has the true aspect ratio.

    Args:
        path: ``.png`` destination (written atomically).
        slice_hu: [rows, cols] HU.
        pixel_mm: (row, col) spacing in mm.
    """
    from scipy import ndimage

    img = window_to_uint8(slice_hu, *SOFT_TISSUE_WINDOW_HU)
    row_mm, col_mm = pixel_mm
    if abs(row_mm - col_mm) > 1e-3 * col_mm:
        img = ndimage.zoom(img, (row_mm / col_mm, 1.0), order=1)
    plt = pyplot()
    with atomic_path(path) as tmp:
        plt.imsave(tmp, img, cmap="gray", vmin=0, vmax=255)
    return Path(path)


def write_qc_png(path: str | os.PathLike, title: str, mips_hu: dict, profiles: dict,
                 z_rows_mm: np.ndarray, threshold: float, l3_z_mm: float | None,
                 second_z_mm: float | None = None, dpi: int = 70,
                 levels_z_mm: dict | None = None) -> Path:
    """The QC picture: frontal and sagittal MIPs with the predicted L3 line, and the profile.

    Vertical axes are world z (mm, superior up) in every panel, so the line on the MIPs and the
    peak of the profile sit at the same height.

    Args:
        path: ``.png`` destination (written atomically).
        title: first line of the title (scan name, status, confidence...).
        mips_hu: view -> (native MIP [slices, cols] HU, col spacing mm, (z_top_mm, z_bottom_mm)).
        profiles: label -> confidence profile [n_rows] on the processed row grid.
        z_rows_mm: [n_rows] world z of each processed row.
        threshold: the abstention threshold (dashed line on the profile).
        l3_z_mm: predicted L3 z (solid line), None when not found.
        second_z_mm: the second candidate of an ambiguous case (dotted line), or None.
        levels_z_mm: level name -> z of every level found (thin labelled lines on both MIPs).
    """
    plt = pyplot()
    views = [v for v in ("frontal", "sagittal") if v in mips_hu]
    height_in = 4.6
    # panel widths in inches from the MIPs' true aspect (mm), bounded so that a very long or very
    # short scan still gives a readable picture; the images then fill their panels
    widths = []
    for v in views:
        image, col_mm, (z_top, z_bottom) = mips_hu[v]
        extent_z = max(abs(z_top - z_bottom), 1.0)
        widths.append(min(max(height_in * image.shape[1] * col_mm / extent_z, 0.8), 4.0))
    widths.append(1.8)
    fig, axes = plt.subplots(1, len(views) + 1, figsize=(sum(widths) + 0.8, height_in + 0.4),
                             gridspec_kw={"width_ratios": widths}, sharey=True)
    for ax, view in zip(axes, views):
        image, col_mm, (z_top, z_bottom) = mips_hu[view]
        half = 0.5 * abs(z_top - z_bottom) / max(image.shape[0] - 1, 1)
        ax.imshow(image, cmap="gray", vmin=QC_MIP_WINDOW_HU[0], vmax=QC_MIP_WINDOW_HU[1],
                  extent=(0, image.shape[1] * col_mm, z_bottom - half, z_top + half),
                  aspect="auto", interpolation="bilinear")
        ax.set_title(view, fontsize=9)
        ax.set_xticks([])
        for z, style in ((l3_z_mm, "-"), (second_z_mm, ":")):
            if z is not None and math.isfinite(z):
                ax.axhline(z, color="#ff3030", lw=1.2, ls=style)
        for level, z in (levels_z_mm or {}).items():
            ax.axhline(z, color="#30c0ff", lw=0.6)
            ax.text(0.02, z, level, color="#30c0ff", fontsize=6, va="bottom",
                    transform=ax.get_yaxis_transform())
    axes[0].set_ylabel("z (mm, superior up)")
    ax = axes[-1]
    for label, profile in profiles.items():
        ax.plot(profile, z_rows_mm, lw=1.2, label=label)
    ax.axvline(threshold, color="grey", ls="--", lw=0.8, label="threshold")
    for z, style in ((l3_z_mm, "-"), (second_z_mm, ":")):
        if z is not None and math.isfinite(z):
            ax.axhline(z, color="#ff3030", lw=1.0, ls=style)
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return Path(path)


def review_key(record: dict, threshold: float) -> tuple:
    """Sort key of the review page: errors, then not found, ambiguous, then found by rising
    confidence (low-confidence finds first)."""
    status = record.get("status", "error")
    rank = REVIEW_ORDER.index(status) if status in REVIEW_ORDER else 0
    conf = record.get("confidence")
    conf = float(conf) if isinstance(conf, (int, float)) and math.isfinite(conf) else -1.0
    return rank, conf, str(record.get("name", ""))


def low_confidence(record: dict, threshold: float) -> bool:
    """A ``found`` whose peak is closer to the threshold than to 1: worth a look."""
    conf = record.get("confidence")
    return (record.get("status") == "found" and isinstance(conf, (int, float))
            and conf < 0.5 * (1.0 + threshold))


#: Cases a montage shows at most: a row per case, so hundreds of phantoms made a picture tens of
#: thousands of pixels tall that nobody could read (300 phantoms: about 3 min for the four views).
MONTAGE_CASES = 48


def montage_cases(cases, limit: int = MONTAGE_CASES):
    """The cases of an external evaluation a montage shows: all of them, in their order, when
    there are at most ``limit``; otherwise the ``limit`` most worth a look, worst first: a
    positive found at the wrong level, a negative found, a positive whose row is more than 10 mm
    off, a positive not found or ambiguous, then the rest by error."""
    if len(cases) <= limit:
        return cases
    negative = cases["negative"].astype(bool)
    found = cases["status"] == "found"
    error = cases["error_mm"].abs().fillna(0.0)
    worry = np.select([found & ~negative & ~cases["right_level"].astype(bool), found & negative,
                       ~negative & (error > 10.0), ~negative & ~found], [4, 3, 2, 1], default=0)
    order = cases.assign(_worry=worry, _error=error).sort_values(["_worry", "_error"], ascending=False,
                                                                   kind="stable")
    return cases.loc[order.index[:limit]]


def write_external_montage(path: str | os.PathLike, cases, profiles: dict, title: str,
                           dpi: int = 60) -> Path:
    """One row per case of an external evaluation (at most :data:`MONTAGE_CASES`, those most
    worth a look: :func:`montage_cases`): frontal and sagittal MIPs with the true L3 body shaded
    green (its extent, or +-5 mm around the centre) and the predicted row in red (dotted: an
    abstention), and the confidence profile with the threshold.

    Args:
        path: ``.png`` destination (written atomically).
        cases: rows of the external ``per_case.csv`` (one model).
        profiles: case name -> ``l3loc.external._Profiles`` (None for a scan that failed).
        title: figure title.
    """
    shown = montage_cases(cases)
    if len(shown) < len(cases):
        title += f"\nthe {len(shown)} of {len(cases)} cases most worth a look, worst first"
    cases = shown
    plt = pyplot()
    n = max(len(cases), 1)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for row, (_, c) in zip(axes, cases.iterrows()):
        p = profiles.get(c["name"])
        top, bottom, true_z = c["l3_top_z_mm"], c["l3_bottom_z_mm"], c["true_z_mm"]
        if not (math.isfinite(top) and math.isfinite(bottom)) and math.isfinite(true_z):
            top, bottom = true_z + 5.0, true_z - 5.0
        style = "-" if c["status"] == "found" else ":"
        head = (f"{c['name']}: {c['status']} {c['confidence']:.2f}"
                + (f", error {c['error_mm']:.0f} mm" if math.isfinite(c["error_mm"]) else "")
                + (" (negative)" if c["negative"] else ""))
        row[0].set_title(head, fontsize=7, loc="left")
        for ax, view in zip(row[:2], ("frontal", "sagittal")):
            ax.set_xticks([])
            mip = p.mips.get(view) if p is not None else None
            if mip is None:
                ax.text(0.5, 0.5, c["message"][:60] or "–", ha="center", va="center", fontsize=6,
                        transform=ax.transAxes, wrap=True)
                continue
            image, z = mip
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, aspect="auto",
                      extent=(0, image.shape[1], float(z[-1]), float(z[0])))
            ax.set_ylim(float(z[-1]), float(z[0]))
            ax.tick_params(labelsize=6)
            if math.isfinite(top):
                ax.axhspan(bottom, top, color="#30c030", alpha=0.35, lw=0)
            if math.isfinite(c["pred_z_mm"]):
                ax.axhline(c["pred_z_mm"], color="#ff3030", lw=1.0, ls=style)
        ax = row[2]
        if p is not None and p.profile is not None:
            ax.plot(p.profile, p.rows_mm, lw=1.0)
            ax.set_ylim(float(p.rows_mm[-1]), float(p.rows_mm[0]))
            if math.isfinite(top):
                ax.axhspan(bottom, top, color="#30c030", alpha=0.35, lw=0)
        ax.axvline(c["threshold"], color="grey", ls="--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=6)
    # the title keeps its own 0.6 inch at the top: a fraction of a tall figure would overlap row 1
    height_in = fig.get_figheight()
    fig.suptitle(title + "\n(green: true L3 body; red: predicted row, dotted when not found)",
                 fontsize=8, y=1 - 0.05 / height_in, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / height_in))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return Path(path)
