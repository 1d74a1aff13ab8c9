"""Preprocessing: CT volume -> MIP -> 1 mm grid -> HU window -> canvas, with the geometry to undo it.

Every function is pure (no I/O) and states its array shapes and units. Conventions (see
CONTRIBUTING.md): a canonical volume is ``hu[slice S->I, row A->P, col R->L]``; every 2-D image has
rows = axial slices, superior -> inferior.

Pixel-centre convention (used by ``resample_to_mm`` and ``CaseGeometry`` alike): indices name
pixel centres, and row 0 of the native image and row 0 of the resampled image share the same
centre. Native row ``r`` (spacing ``s`` mm) is therefore at ``r * s`` mm from the first centre
and lands on resampled row ``r * s / target_mm``; resampled row ``p`` comes from native row
``p * target_mm / s``. This is the paper's ``label_1mm = loc * spacing[2]``. Columns follow the
same rule, plus an integer offset from fitting them to the canvas.

Steps, composed by ``preprocess_case`` (the npz path and the 3-D path share everything after
``mip``): ``resample_to_mm`` (HU) -> ``window_hu`` -> ``fit_columns`` (around the body centre in
the frontal view, the spine in the sagittal view) -> ``side_mask`` (frontal only). The band of
columns the target covers and the row profile reads (``band_col_range``) is stated in mm from
that centre, per view; in the frontal view it is also the side mask. Rows are never cropped: training samples a window of rows,
inference pads the full height (:mod:`l3loc.row_windows`). The MIP itself is :mod:`l3loc.mip`;
the geometry that maps rows back to the scan is :mod:`l3loc.case_geometry`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from l3loc.case_geometry import CaseGeometry, CTVolumeLike, VolumeGeometryLike
from l3loc.mip import BODY_HU, BONE_HU, VIEWS, mip
from l3loc.preprocess_config import PreprocessConfig

# Smoothing (Gaussian sigma, mm) of the sagittal bone-persistence profile that finds the spine's
# anterior-posterior position: a few mm, so single-column gaps (the canal's edge, noise) do not
# split the vertebral column into runs.
_SPINE_SMOOTH_MM = 3.0


# ----------------------------------------------------------------------------- 2-D steps


def body_centre_col_px(image_hu: np.ndarray) -> float:
    """Column of the body's centre in a 2-D MIP: median over rows of the body-mask centroid.

    The body mask is HU > -500 (everything but air). The median over rows ignores rows where
    the arms or the table pull the centroid sideways.

    Args:
        image_hu: [rows, cols] HU.

    Returns:
        Fractional column index; the image centre if no pixel is above -500 HU.
    """
    mask = image_hu > BODY_HU
    per_row = mask.sum(axis=1)
    rows = per_row > 0
    if not rows.any():
        return (image_hu.shape[1] - 1) / 2.0
    cols = np.arange(image_hu.shape[1], dtype=np.float64)
    centroids = mask[rows].astype(np.float64) @ cols / per_row[rows]
    return float(np.median(centroids))


def spine_ap_centre_px(image_hu: np.ndarray, col_spacing_mm: float) -> float:
    """Anterior-posterior position of the spine in a sagittal MIP, as a fractional column index.

    The sagittal MIP (columns A->P) is a maximum over a slab around the spine, so the vertebral
    column is the bone that is there in nearly every row: vertebral bodies (interrupted only by
    the discs), pedicles, laminae and spinous processes. Bone elsewhere in the slab comes and
    goes with the rows: the sternum and costal cartilage (chest rows only), calcified aorta,
    contrast in bowel or bladder, the femoral heads. So:

    1. Persistence: per column, the fraction of body rows (rows with any pixel above -500 HU)
       in which the pixel is bone (HU >= 200), smoothed along columns (Gaussian, 3 mm).
    2. The vertebral column is the run of columns around the most persistent one that stays
       above half of that peak; the result is the persistence-weighted centroid of that run.
       It lies at the back of the vertebral body (between the body, most persistent, and the
       posterior arch); the sagittal band (``PreprocessConfig.sagittal_band_mm``) is stated in
       mm from this point.

    A weighted centroid over a run of columns (not the argmax) moves by a fraction of a column
    when a row or two change, so the canvas does not jump between similar scans.

    The same function serves the npz path (the paper's dataset holds only 2-D MIPs) and the
    scan path (``preprocess_volume`` makes the same slab MIP from the volume, around the spine's
    left-right centre found in 3-D), so training and inference centre the canvas alike.

    Args:
        image_hu: [rows S->I, cols A->P] sagittal MIP in HU.
        col_spacing_mm: column spacing (mm) of ``image_hu``.

    Returns:
        Fractional column index; the body centre (``body_centre_col_px``) if no bone is found.
    """
    body_rows = (image_hu > BODY_HU).any(axis=1)
    if not body_rows.any():
        return body_centre_col_px(image_hu)
    persistence = (image_hu[body_rows] >= BONE_HU).mean(axis=0, dtype=np.float64)
    persistence = ndimage.gaussian_filter1d(persistence, _SPINE_SMOOTH_MM / col_spacing_mm,
                                            mode="constant")
    peak = int(np.argmax(persistence))
    if persistence[peak] <= 0:
        return body_centre_col_px(image_hu)
    above = persistence >= persistence[peak] / 2
    # the run of columns above half the peak that contains the peak
    lo = peak - int(np.argmin(above[peak::-1])) + 1 if not above[:peak + 1].all() else 0
    hi = peak + int(np.argmin(above[peak:])) if not above[peak:].all() else len(above)
    cols = np.arange(lo, hi, dtype=np.float64)
    w = persistence[lo:hi]
    return float(w @ cols / w.sum())


def resampled_length(n_px: int, spacing_mm: float, target_mm: float = 1.0) -> int:
    """Number of target-grid pixels whose centres fall on the native pixel centres' span.

    With row 0 shared, native centres span ``(n_px - 1) * spacing_mm``; the target grid keeps
    every centre inside that span, so nothing is extrapolated and at most half a native pixel
    (plus under one target pixel) at the far end is lost.
    """
    # the epsilon keeps e.g. 40 * 2.5 / 1.0 = 100 from flooring to 99 after rounding error
    return int(math.floor((n_px - 1) * spacing_mm / target_mm + 1e-9)) + 1


def _resample_axis(a: np.ndarray, axis: int, spacing_mm: float, target_mm: float) -> np.ndarray:
    n = a.shape[axis]
    if spacing_mm == target_mm:
        return a
    shrink = target_mm / spacing_mm
    if shrink > 1.0:
        # anti-aliasing before shrinking: the sigma rule of skimage.transform.rescale, in native px
        a = ndimage.gaussian_filter1d(a, sigma=(shrink - 1.0) / 2.0, axis=axis, mode="nearest")
    n_out = resampled_length(n, spacing_mm, target_mm)
    if n == 1:
        return np.take(a, np.zeros(n_out, dtype=np.intp), axis=axis)
    pos = np.arange(n_out, dtype=np.float64) * shrink  # native coordinate of each target centre
    i0 = np.minimum(np.floor(pos).astype(np.intp), n - 2)
    w = (pos - i0).astype(a.dtype)
    shape = [1] * a.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    # linear interpolation: exact at shared centres, no overshoot at bone edges (unlike splines)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i0 + 1, axis=axis) * w


def resample_to_mm(
    image: np.ndarray,
    spacing_mm_rc: tuple[float, float],
    target_mm: float = 1.0,
) -> np.ndarray:
    """Resample a 2-D image to ``target_mm`` pixels, rows and columns separately.

    Linear interpolation; when an axis shrinks (spacing < target) it is first Gaussian-filtered
    with sigma = (target/spacing - 1)/2 native pixels against aliasing. Pixel-centre convention:
    native ``(r, c)`` lands on ``(r * s_r / target, c * s_c / target)`` (module docstring); the
    output has ``resampled_length(n, s, target)`` pixels per axis.

    Args:
        image: [rows, cols], any real values (HU).
        spacing_mm_rc: (row spacing, column spacing) in mm.
        target_mm: output pixel size in mm.

    Returns:
        float32 [rows', cols'].
    """
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image must be 2-D and non-empty, got shape {image.shape}")
    s_r, s_c = (float(v) for v in spacing_mm_rc)
    if not all(math.isfinite(v) and v > 0 for v in (s_r, s_c, target_mm)):
        raise ValueError(f"spacings must be > 0, got spacing_mm_rc={spacing_mm_rc}, "
                         f"target_mm={target_mm}")
    out = np.asarray(image, dtype=np.float32)
    out = _resample_axis(out, 0, s_r, target_mm)
    out = _resample_axis(out, 1, s_c, target_mm)
    return np.ascontiguousarray(out, dtype=np.float32)


def window_hu(image_hu: np.ndarray, lo: float = 100.0, hi: float = 1500.0) -> np.ndarray:
    """Clip to the fixed window [lo, hi] HU and map it linearly to [0, 1] (no per-image scaling).

    Args:
        image_hu: any shape, HU.
        lo, hi: window in HU (lo -> 0, hi -> 1).

    Returns:
        float32 array of the same shape in [0, 1].
    """
    if not lo < hi:
        raise ValueError(f"window needs lo < hi, got [{lo}, {hi}]")
    out = (np.asarray(image_hu, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def fit_columns(
    image: np.ndarray,
    width_px: int,
    centre_col: float,
    fill: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Crop or pad columns to ``width_px`` so that ``centre_col`` lands on column ``width_px // 2``.

    Args:
        image: [rows, cols].
        width_px: output width.
        centre_col: column of ``image`` (fractional; rounded) to put in the middle.
        fill: value of padded columns (0 = below the window after ``window_hu``).

    Returns:
        (fitted [rows, width_px] image, col_offset): output column ``j`` is input column
        ``j + col_offset`` (negative offset = padding on the left).
    """
    rows, cols = image.shape
    offset = int(round(centre_col)) - width_px // 2
    out = np.full((rows, width_px), fill, dtype=image.dtype)
    src_lo, src_hi = max(offset, 0), min(offset + width_px, cols)
    if src_hi > src_lo:
        out[:, src_lo - offset:src_hi - offset] = image[:, src_lo:src_hi]
    return out, offset


def side_mask_cols(width_px: int, keep: tuple[float, float] = (0.35, 0.65)) -> tuple[int, int]:
    """Columns ``[first, last)`` kept by the side mask: those whose centre ``(c + 0.5) / width``
    lies within ``keep``. For ``keep`` symmetric about 0.5 the band is symmetric (512 px,
    (0.35, 0.65) -> columns 179..332, 154 columns)."""
    lo, hi = keep
    first = int(math.ceil(lo * width_px - 0.5 - 1e-9))
    last = int(math.floor(hi * width_px - 0.5 + 1e-9)) + 1
    return max(first, 0), min(last, width_px)


def band_col_range(cfg: PreprocessConfig, view: str) -> tuple[float, float]:
    """The view's band (``cfg.<view>_band_mm``) as ``(lo, hi)`` fractions of the canvas width.

    The one source of the band's columns: the band target (``l3loc.labels.band_target``), the
    row profile (``l3loc.decode.row_profile``) and the frontal side mask all take these fractions
    and turn them into columns with ``side_mask_cols``. Column ``c`` of the canvas lies
    ``(c - W // 2) * spacing_mm`` mm from the canvas centre (``fit_columns`` puts the centre on
    column ``W // 2``); the band keeps the columns whose position lies within the mm range, and
    the fractions are those for which ``side_mask_cols`` keeps exactly these. A band reaching
    past the canvas is clipped to it.

    Raises:
        ValueError: unknown view, or a band that keeps no column of the canvas.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    lo_mm, hi_mm = cfg.frontal_band_mm if view == "frontal" else cfg.sagittal_band_mm
    width = cfg.canvas[1]
    # (c + 0.5) / W >= frac  <=>  c >= W // 2 + lo_mm / spacing: the column rule of side_mask_cols
    lo, hi = ((width // 2 + mm / cfg.spacing_mm + 0.5) / width for mm in (lo_mm, hi_mm))
    lo, hi = min(max(lo, 0.0), 1.0), min(max(hi, 0.0), 1.0)
    first, last = side_mask_cols(width, (lo, hi))
    if last <= first:
        raise ValueError(f"the {view} band {lo_mm:g}..{hi_mm:g} mm keeps no column of a "
                         f"{width}-column canvas at {cfg.spacing_mm:g} mm")
    return lo, hi


def side_mask(image: np.ndarray, keep: tuple[float, float] = (0.35, 0.65)) -> np.ndarray:
    """Zero every column outside the central band ``keep`` (fractions of the width).

    Args:
        image: [rows, cols] windowed image (0 = background).
        keep: (lo, hi) fractions of the width; see ``side_mask_cols``.

    Returns:
        A masked copy, same shape and dtype.
    """
    first, last = side_mask_cols(image.shape[1], keep)
    out = np.zeros_like(image)
    out[:, first:last] = image[:, first:last]
    return out


# ----------------------------------------------------------------------------- composition


@dataclass
class ProcessedCase:
    """Output of ``preprocess_case``.

    Attributes:
        image: float32 [n_rows, canvas cols] in [0, 1], full height.
        geometry: maps its rows back to the scan.
        label_row_px: L3 row on ``image`` (float), NaN if no label.
        native_hu: the native MIP it was made from (HU, [rows, cols], the caller's array, not a
            copy), for pictures that show the scan as it was.
    """

    image: np.ndarray
    geometry: CaseGeometry
    label_row_px: float
    native_hu: np.ndarray


def preprocess_case(
    image_hu: np.ndarray,
    spacing_mm_rc: tuple[float, float],
    view: str,
    label_row: float | None = None,
    volume_geometry: VolumeGeometryLike | None = None,
    cfg: PreprocessConfig | None = None,
) -> ProcessedCase:
    """One 2-D MIP -> network-ready full-height image + geometry + label row.

    Steps: resample to ``cfg.spacing_mm`` (HU) -> HU window -> columns fitted to
    ``cfg.canvas[1]`` around the body centre (frontal) or the spine (sagittal,
    ``spine_ap_centre_px``: the body's centre lies in front of the spine, and a band around it
    would cover the abdomen instead of the vertebra) -> side mask (frontal view only, the
    frontal band; in the sagittal view there are no arms to mask).

    Args:
        image_hu: [rows S->I, cols] native MIP in HU (an npz image, or ``mip()`` of a volume).
        spacing_mm_rc: (row spacing = slice spacing, column spacing) in mm.
        view: "frontal" or "sagittal".
        label_row: L3 as a native MIP row (float), or None/NaN.
        volume_geometry: the scan's VolumeGeometry (3-D path) or None (npz).
        cfg: parameters; default ``PreprocessConfig()``.

    Returns:
        ProcessedCase.
    """
    cfg = cfg or PreprocessConfig()
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    image_hu = np.asarray(image_hu)
    if image_hu.ndim != 2 or image_hu.size == 0:
        raise ValueError(f"image must be 2-D and non-empty, got shape {image_hu.shape}")
    if not np.isfinite(image_hu).all():
        raise ValueError("image has NaN/inf pixels")
    s_r, s_c = (float(v) for v in spacing_mm_rc)
    t = cfg.spacing_mm
    centre_native = (body_centre_col_px(image_hu) if view == "frontal"
                     else spine_ap_centre_px(image_hu, s_c))
    img = resample_to_mm(image_hu, (s_r, s_c), t)
    img = window_hu(img, *cfg.hu_window)
    img, col_offset = fit_columns(img, cfg.canvas[1], centre_native * s_c / t)
    if view == "frontal" and cfg.side_mask:
        img = side_mask(img, band_col_range(cfg, view))
    geom = CaseGeometry(
        n_native_rows=int(image_hu.shape[0]), n_native_cols=int(image_hu.shape[1]),
        row_spacing_mm=s_r, col_spacing_mm=s_c, target_mm=t, n_rows=int(img.shape[0]),
        col_offset=int(col_offset), volume=volume_geometry,
    )
    has_label = label_row is not None and math.isfinite(label_row)
    label_px = float(geom.processed_row(label_row)) if has_label else math.nan
    return ProcessedCase(img, geom, label_px, image_hu)


def preprocess_volume(
    ct: CTVolumeLike,
    view: str,
    label_slice: float | None = None,
    cfg: PreprocessConfig | None = None,
) -> ProcessedCase:
    """A CT volume -> ``mip`` -> ``preprocess_case`` (the same path as the npz after the MIP).

    Args:
        ct: an ``l3loc.io.geometry.CTVolume`` (``hu`` [slices S->I, rows A->P, cols R->L],
            ``spacing_mm`` (slice, row, col), ``geometry``).
        view: "frontal" or "sagittal".
        label_slice: L3 as a canonical slice index (float) or None.
        cfg: parameters; default ``PreprocessConfig()``.
    """
    cfg = cfg or PreprocessConfig()
    spacing_mm = tuple(float(v) for v in ct.spacing_mm)
    image = mip(ct.hu, view, spacing_mm, cfg.sagittal_slab_mm)
    # frontal columns are R->L (column spacing), sagittal columns are A->P (row spacing)
    col_spacing = spacing_mm[2] if view == "frontal" else spacing_mm[1]
    return preprocess_case(image, (spacing_mm[0], col_spacing), view, label_slice, ct.geometry, cfg)
