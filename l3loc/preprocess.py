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
that centre, per view; in the frontal view it is also the side mask. Rows are never cropped: training samples a window of rows
(``sample_row_window`` + ``row_window``), inference pads the full height
(``pad_rows_to_multiple``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

#: Names of the two projections, in the order tools list them.
VIEWS = ("frontal", "sagittal")

# Voxels above this are "inside the body" (air is about -1000 HU, lung -900..-500, fat about -100).
_BODY_HU = -500.0
# Voxels at or above this are bone (cortical bone 300..2000 HU, trabecular 150..300 HU).
_BONE_HU = 200.0
# Half-width (mm) of the band around the body centre in which bone refines the spine centre:
# wide enough for the vertebral body and the rib heads (symmetric), narrow enough to leave out
# arms, iliac wings and the lateral ribs.
_SPINE_SEARCH_MM = 50.0
# Slices looked at (at most about this many, evenly spaced) to find the spine's centre.
_SPINE_SLICES = 64
# Smoothing (Gaussian sigma, mm) of the sagittal bone-persistence profile that finds the spine's
# anterior-posterior position: a few mm, so single-column gaps (the canal's edge, noise) do not
# split the vertebral column into runs.
_SPINE_SMOOTH_MM = 3.0


def _check_volume(volume_hu: np.ndarray, spacing_mm: tuple[float, float, float]) -> None:
    if volume_hu.ndim != 3 or min(volume_hu.shape) < 1:
        raise ValueError(f"volume must be 3-D [slice, row, col] and non-empty, "
                         f"got shape {volume_hu.shape}")
    if len(spacing_mm) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_mm):
        raise ValueError(f"spacing_mm must be three positive numbers (slice, row, col), "
                         f"got {spacing_mm}")


def spine_lr_centre_px(volume_hu: np.ndarray, spacing_mm: tuple[float, float, float]) -> float:
    """Left-right position of the spine in a canonical volume, as a fractional column index.

    Two steps, each robust to what the other is not:

    1. Body centre: per axial slice, the column centroid of the body mask (HU > -500), then the
       median over slices. The median ignores slices where an arm or the table shifts the
       centroid; the body mask (not the image centre) follows a patient lying off-centre.
    2. Spine: the weighted centroid of the bone voxels (HU >= 200) in the columns within +-50 mm
       of the body centre. Near the midline the bone is the vertebral column (plus the sternum
       and the sacrum, also midline, and the paired rib heads, symmetric), so this moves the
       centre onto the spine when the spine is not exactly at the body centre (scoliosis, an
       asymmetric body outline).

    If no bone lies in that band the body centre is returned; if nothing is above -500 HU the
    image centre is returned.

    Args:
        volume_hu: [slices, rows A->P, cols R->L] HU.
        spacing_mm: (slice, row, col) spacing in mm.

    Returns:
        Column index (float, 0-based) of the spine's left-right centre.
    """
    _check_volume(volume_hu, spacing_mm)
    # Both steps are medians/centroids over slices: every k-th of at most ~64 slices gives the
    # same answer to a fraction of a column at a fraction of the cost (it was a quarter of the
    # synthetic generator's time on 500-slice volumes).
    volume_hu = volume_hu[::max(1, volume_hu.shape[0] // _SPINE_SLICES)]
    n_cols = volume_hu.shape[2]
    cols = np.arange(n_cols, dtype=np.float64)
    body_per_col = (volume_hu > _BODY_HU).sum(axis=1, dtype=np.float64)  # [slices, cols]
    weight = body_per_col.sum(axis=1)
    has_body = weight > 0
    if not has_body.any():
        return (n_cols - 1) / 2.0
    centroids = body_per_col[has_body] @ cols / weight[has_body]
    body_centre = float(np.median(centroids))

    half_px = _SPINE_SEARCH_MM / spacing_mm[2]
    lo = max(int(np.ceil(body_centre - half_px)), 0)
    hi = min(int(np.floor(body_centre + half_px)), n_cols - 1)
    bone_per_col = (volume_hu[:, :, lo:hi + 1] >= _BONE_HU).sum(axis=(0, 1), dtype=np.float64)
    if bone_per_col.sum() == 0:
        return body_centre
    return float(bone_per_col @ cols[lo:hi + 1] / bone_per_col.sum())


def sagittal_slab_cols(
    volume_hu: np.ndarray,
    spacing_mm: tuple[float, float, float],
    sagittal_slab_mm: float | None,
) -> tuple[int, int]:
    """Columns ``[first, last)`` of the slab the sagittal MIP is taken over.

    Args:
        volume_hu: [slices, rows, cols] HU, canonical.
        spacing_mm: (slice, row, col) spacing in mm.
        sagittal_slab_mm: half-width of the slab in mm either side of the spine centre column
            (``spine_lr_centre_px``); None = the full width.

    Returns:
        (first, last) column indices, last exclusive, clipped to the volume.
    """
    n_cols = volume_hu.shape[2]
    if sagittal_slab_mm is None:
        return 0, n_cols
    if not sagittal_slab_mm >= 0:
        raise ValueError(f"sagittal_slab_mm must be >= 0 or None, got {sagittal_slab_mm}")
    centre = int(round(spine_lr_centre_px(volume_hu, spacing_mm)))
    half = int(round(sagittal_slab_mm / spacing_mm[2]))
    return max(centre - half, 0), min(centre + half + 1, n_cols)


def mip(
    volume_hu: np.ndarray,
    view: str,
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
    sagittal_slab_mm: float | None = 20.0,
) -> np.ndarray:
    """Maximum-intensity projection of a canonical CT volume.

    Row r of the result is canonical slice r (so "native MIP row" == canonical slice index).

    Args:
        volume_hu: [slices S->I, rows A->P, cols R->L] HU.
        view: "frontal" (max over A->P; image [slices, cols R->L]) or "sagittal" (max over a
            left-right slab; image [slices, rows A->P]).
        spacing_mm: (slice, row, col) spacing in mm; the sagittal slab width uses the column one.
        sagittal_slab_mm: sagittal only: half-width (mm) of the slab around the spine's
            left-right centre (``spine_lr_centre_px``). The paper's code used about +-10 voxels
            around the body centre (about +-7 mm at 0.7 mm pixels); the default +-20 mm (the
            configs' default) spans the vertebral body (about 45 mm wide at L3) and leaves out
            the lateral ribs and the arms.
            None = maximum over the full width.

    Returns:
        2-D MIP in HU, float32: [slices, cols] (frontal) or [slices, rows] (sagittal).
    """
    _check_volume(volume_hu, spacing_mm)
    if view == "frontal":
        out = volume_hu.max(axis=1)
    elif view == "sagittal":
        first, last = sagittal_slab_cols(volume_hu, spacing_mm, sagittal_slab_mm)
        out = volume_hu[:, :, first:last].max(axis=2)
    else:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    return out.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing parameters: the ``preprocess:`` section of an experiment's YAML.

    Attributes:
        spacing_mm: target pixel size (mm) of rows and columns after resampling.
        hu_window: (lo, hi) HU mapped linearly to [0, 1] after clipping.
        canvas: (rows, cols) of the network input; columns are fitted to ``canvas[1]``, rows are
            the size of a training window (the full height is kept for inference).
        frontal_band_mm: (lo, hi) mm from the frontal canvas centre (the body centre, patient's
            right negative): the columns of the band target and of the decoded row profile, and
            the columns the side mask keeps. The card's 35 %..65 % of a 512 mm canvas is about
            +-77 mm: the spine with the rib heads and transverse processes, without the arms.
        sagittal_band_mm: (lo, hi) mm from the sagittal canvas centre (the spine,
            ``spine_ap_centre_px``, which lies at the back of the vertebral body; anterior
            negative): the band's columns in the sagittal view. Measured at L3 on four real scans
            (benchmarks/sagittal_band.py) the body's centre lies 20..33 mm and its front
            40..57 mm anterior of that centre, the spinous processes end 33..47 mm behind it
            (phantoms: body centre 21..31 mm, front 37..46 mm anterior), so (-60, 50) covers
            the vertebra from front to back.
        side_mask: zero the frontal columns outside ``frontal_band_mm`` (the card's side mask).
        sagittal_slab_mm: half-width (mm) of the sagittal MIP slab around the spine centre;
            None = the full width.
    """

    spacing_mm: float = 1.0
    hu_window: tuple[float, float] = (100.0, 1500.0)
    canvas: tuple[int, int] = (512, 512)
    frontal_band_mm: tuple[float, float] = (-77.0, 77.0)
    sagittal_band_mm: tuple[float, float] = (-60.0, 50.0)
    side_mask: bool = True
    sagittal_slab_mm: float | None = 20.0

    def __post_init__(self):
        # normalise YAML lists to tuples so configs compare and hash the same way
        object.__setattr__(self, "spacing_mm", float(self.spacing_mm))
        object.__setattr__(self, "hu_window", tuple(float(v) for v in self.hu_window))
        object.__setattr__(self, "canvas", tuple(int(v) for v in self.canvas))
        for name in ("frontal_band_mm", "sagittal_band_mm"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.sagittal_slab_mm is not None:
            object.__setattr__(self, "sagittal_slab_mm", float(self.sagittal_slab_mm))
        problems = []
        if not (math.isfinite(self.spacing_mm) and self.spacing_mm > 0):
            problems.append(f"spacing_mm must be > 0, got {self.spacing_mm}")
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            problems.append(f"hu_window must be [lo, hi] with lo < hi, got {list(self.hu_window)}")
        if len(self.canvas) != 2 or min(self.canvas) < 1:
            problems.append(f"canvas must be [rows, cols] >= 1, got {list(self.canvas)}")
        for name in ("frontal_band_mm", "sagittal_band_mm"):
            band = getattr(self, name)
            if len(band) != 2 or not band[0] < band[1]:
                problems.append(f"{name} must be [lo, hi] in mm with lo < hi, got {list(band)}")
        if not isinstance(self.side_mask, bool):
            problems.append(f"side_mask must be true or false, got {self.side_mask!r}")
        if self.sagittal_slab_mm is not None and not self.sagittal_slab_mm >= 0:
            problems.append(f"sagittal_slab_mm must be >= 0 or null, got {self.sagittal_slab_mm}")
        if problems:
            raise ValueError("preprocess config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        """Build from the YAML ``preprocess:`` mapping; missing keys take the defaults.

        Raises:
            ValueError: an unknown key (named) or an invalid value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"preprocess config: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict (tuples as lists); ``from_dict(to_dict())`` round-trips."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


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
    mask = image_hu > _BODY_HU
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
    body_rows = (image_hu > _BODY_HU).any(axis=1)
    if not body_rows.any():
        return body_centre_col_px(image_hu)
    persistence = (image_hu[body_rows] >= _BONE_HU).mean(axis=0, dtype=np.float64)
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


def sample_row_window(
    height_px: int,
    label_row: float | None,
    canvas_rows: int,
    rng: np.random.Generator,
    p_positive: float = 0.5,
) -> int:
    """First row of a training window of ``canvas_rows`` rows (the paper's sampling).

    With probability ``p_positive`` (and a finite ``label_row``) the window contains the label
    row; otherwise any window is drawn uniformly (its target may then be empty). An image shorter
    than the window gets a start in ``[height - canvas_rows, 0]`` (padding above or below).

    Args:
        height_px: rows of the processed image.
        label_row: processed L3 row, or None/NaN for a negative case.
        canvas_rows: rows of the window.
        rng: numpy Generator (the caller owns the seed).
        p_positive: probability of a window that contains the label.

    Returns:
        Start row (may be negative for short images); use ``row_window`` to cut it.
    """
    lo, hi = min(0, height_px - canvas_rows), max(0, height_px - canvas_rows)
    positive = label_row is not None and math.isfinite(label_row) and rng.random() < p_positive
    if positive:
        # the window [s, s + canvas_rows) holds the label row's pixel when s <= row < s + canvas_rows
        row = int(math.floor(label_row))
        lo, hi = max(lo, row - canvas_rows + 1), min(hi, row)
        if lo > hi:  # label outside the image (e.g. shifted by augmentation): any window
            lo, hi = min(0, height_px - canvas_rows), max(0, height_px - canvas_rows)
    return int(rng.integers(lo, hi + 1))


def row_window(image: np.ndarray, start_row: int, n_rows: int, fill: float = 0.0) -> np.ndarray:
    """Rows ``[start_row, start_row + n_rows)`` of ``image``; rows outside it are ``fill``.

    Args:
        image: [rows, cols].
        start_row: first row (may be negative).
        n_rows: window height.

    Returns:
        [n_rows, cols] copy; window row ``i`` is image row ``start_row + i``.
    """
    out = np.full((n_rows, image.shape[1]), fill, dtype=image.dtype)
    lo, hi = max(start_row, 0), min(start_row + n_rows, image.shape[0])
    if hi > lo:
        out[lo - start_row:hi - start_row] = image[lo:hi]
    return out


def pad_rows_to_multiple(image: np.ndarray, stride: int, fill: float = 0.0) -> np.ndarray:
    """Pad rows at the bottom to a multiple of the network stride, for whole-height inference.

    Padding at the bottom keeps every row index unchanged, so ``CaseGeometry`` applies as is;
    crop the network output back to ``image.shape[0]`` rows.

    Args:
        image: [rows, cols].
        stride: the network's total down-sampling factor.

    Returns:
        [ceil(rows / stride) * stride, cols].
    """
    rows = image.shape[0]
    target = -(-rows // stride) * stride
    if target == rows:
        return image
    return row_window(image, 0, target, fill)


# ----------------------------------------------------------------------------- geometry


class CTVolumeLike(Protocol):
    """What ``preprocess_volume`` needs of ``l3loc.io.geometry.CTVolume``."""

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    geometry: "VolumeGeometryLike"


class VolumeGeometryLike(Protocol):
    """What ``CaseGeometry`` needs of ``l3loc.io.geometry.VolumeGeometry`` (canonical slice index
    <-> the file's own slice index <-> world z in mm)."""

    def file_index(self, c): ...
    def canonical_index(self, f): ...
    def z_mm(self, c): ...
    def canonical_from_z(self, z): ...
    def to_dict(self) -> dict: ...


@dataclass
class CaseGeometry:
    """Maps a processed image's rows (and columns) back to the scan, and forward again.

    Chain: processed row ``p`` <-> native MIP row ``r = p * target_mm / row_spacing_mm``
    (== canonical slice index) <-> the scan file's own slice index <-> world z (mm, +superior).
    All methods accept scalars or arrays and are exact inverses of each other (floats, no
    rounding).

    For the 3-D path the file index and z come from ``volume`` (a ``VolumeGeometry``). For the
    paper's npz (no file geometry) the file index is the native MIP row and
    ``z = -row * row_spacing_mm`` (row 0 at z = 0, inferior = more negative), so a z difference
    is still a distance in mm.

    Attributes:
        n_native_rows, n_native_cols: native MIP shape.
        row_spacing_mm, col_spacing_mm: native pixel size (mm).
        target_mm: processed pixel size (mm).
        n_rows: processed height (full, not cropped).
        col_offset: processed column ``j`` is resampled column ``j + col_offset``.
        volume: the scan's VolumeGeometry, or None for an npz case.
    """

    n_native_rows: int
    n_native_cols: int
    row_spacing_mm: float
    col_spacing_mm: float
    target_mm: float
    n_rows: int
    col_offset: int
    volume: VolumeGeometryLike | None = None

    # rows
    def native_row(self, processed_row):
        """Processed row(s) -> native MIP row(s) (== canonical slice index)."""
        return np.asarray(processed_row, dtype=np.float64) * (self.target_mm / self.row_spacing_mm)

    def processed_row(self, native_row):
        """Native MIP row(s) -> processed row(s)."""
        return np.asarray(native_row, dtype=np.float64) * (self.row_spacing_mm / self.target_mm)

    def file_index(self, processed_row):
        """Processed row(s) -> the scan file's own slice index (fractional)."""
        c = self.native_row(processed_row)
        return c if self.volume is None else np.asarray(self.volume.file_index(c), dtype=np.float64)

    def processed_row_from_file_index(self, file_index):
        """The scan file's slice index(es) -> processed row(s)."""
        f = np.asarray(file_index, dtype=np.float64)
        c = f if self.volume is None else np.asarray(self.volume.canonical_index(f), dtype=np.float64)
        return self.processed_row(c)

    def z_mm(self, processed_row):
        """Processed row(s) -> world z in mm (+superior)."""
        c = self.native_row(processed_row)
        if self.volume is None:
            return -c * self.row_spacing_mm
        return np.asarray(self.volume.z_mm(c), dtype=np.float64)

    def processed_row_from_z(self, z_mm):
        """World z (mm) -> processed row(s)."""
        z = np.asarray(z_mm, dtype=np.float64)
        if self.volume is None:
            c = -z / self.row_spacing_mm
        else:
            c = np.asarray(self.volume.canonical_from_z(z), dtype=np.float64)
        return self.processed_row(c)

    # columns (for drawing on the native MIP)
    def native_col(self, processed_col):
        """Processed column(s) -> native MIP column(s)."""
        q = np.asarray(processed_col, dtype=np.float64) + self.col_offset
        return q * (self.target_mm / self.col_spacing_mm)

    def processed_col(self, native_col):
        """Native MIP column(s) -> processed column(s)."""
        q = np.asarray(native_col, dtype=np.float64) * (self.col_spacing_mm / self.target_mm)
        return q - self.col_offset

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``from_dict`` restores it (the volume via VolumeGeometry.from_dict)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "volume"}
        d["volume"] = None if self.volume is None else self.volume.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaseGeometry":
        """Inverse of ``to_dict``."""
        d = dict(d)
        vol = d.pop("volume", None)
        if vol is not None:
            from l3loc.io.geometry import VolumeGeometry  # only 3-D cases need the reader module
            vol = VolumeGeometry.from_dict(vol)
        return cls(**d, volume=vol)


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
    ct: "CTVolumeLike",
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
