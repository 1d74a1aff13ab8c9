"""Training-time augmentation of a preprocessed MIP and its L3 row, on the numpy side.

Input: a processed image, float32 ``[H, W]`` in [0, 1] (HU window mapped to [0, 1]) at
``spacing_mm`` per pixel (1 mm in the card's pipeline), and its L3 row (float, NaN when L3 is
not in the image). Output: the augmented image, same shape, and where the L3 row went.

With probability ``p`` a sample is augmented at all; an augmented sample then goes through
every step below, each with a random amount (a step whose range is empty or zero is skipped):

1. **Horizontal flip** (``hflip``), frontal view only, with probability 1/2: a frontal MIP
   mirrored left-right is still a plausible frontal MIP, and the side mask and the band are
   symmetric. A sagittal MIP flipped would have the spine in front of the belly. There is never
   a vertical flip: L3 is always below L2.
2. **Zoom** by one factor ``z`` drawn from ``zoom`` for rows and columns, about the image centre
   (bigger and smaller patients). Row ``r`` goes to ``(r - c) * z + c`` with
   ``c = (H - 1) / 2``.
3. **Deformation** (``deform_mm``): rows are moved by a monotone piecewise-linear map (random
   shifts of up to ``deform_mm`` at control rows every ``DEFORM_SPACING_MM``, none at the first
   and last row: vertebrae and discs of different heights), columns by a smooth random field of
   the same amplitude. The row map depends on the row only, so the L3 row stays one row, and
   the map is inverted exactly to find it. Zoom and deformation are one bilinear resampling.
4. **Slice-thickness simulation** (``thickness_mm``): a thickness is drawn from the range and
   rounded to ``k`` pixels; every ``k``-th row is kept (random phase) and the others are
   interpolated back from them along rows at their true positions, as a thick-slice scan
   resampled to the fine grid looks. The L3 row does not move. ``k = 1`` changes nothing.
5. **Intensity**: ``image * s + b`` with ``s`` in ``1 ± intensity_scale`` and ``b`` in
   ``± intensity_shift``, then clipped to [0, 1]. Exact zeros (below the HU window, masked
   columns, canvas padding) stay zero: they are exactly zero at inference too.

**Domain randomisation** (phantoms are cleaner than real CT; each step has its own probability
``<step>_p``, drawn per augmented sample, and is off at 0; with every ``_p`` at 0 the random
stream, and so every image, is exactly what it was without them):

6. **Row scale** (``row_scale``): rows alone stretched by a factor about the image centre
   (vertebrae and discs taller or shorter than the phantoms' without a bigger patient), in the
   same resampling as zoom and deformation; the L3 row moves with it.
7. **Rotation** (``rotate_deg``), sagittal images only: the image turned in its plane by a
   drawn angle about the middle of the labelled rows (the mean of the finite label rows, the
   centre row when there is none) on the canvas's centre column (the spine: the sagittal
   canvas is centred on it). The phantoms' endplate tilts follow one lordosis schedule, and
   their sagittal nets learnt to name L3 by its tilt (``benchmarks/count_cues.py``: turned
   12 degrees forward, the L3 of anchor-free phantoms moves a vertebra up); turned images take
   that cue away. A frontal MIP is not turned (nor is a stack holding one): its spine stands
   upright in every patient but a scoliotic one, which the phantoms already vary, and a
   frontal net trained on turned images was at 14.6 mm mean validation error after 6 epochs
   against 4.2 mm without (benchmarks/README.md). Turned about the spine, each label row moves to
   ``pivot + (row - pivot) * cos(angle)``, the row where the labelled point on the centre
   column went (its sideways shift of ``(row - pivot) * sin(angle)`` stays inside the band
   for the lumbar levels). One resampling with zoom and deformation.
8. **Blur** (``blur_row_mm``, ``blur_col_mm``): an anisotropic Gaussian, sigma along rows
   (slice thickness and slice profile) and along columns (the reconstruction kernel) drawn
   separately.
9. **Bone HU** (``bone_scale``, ``bone_offset_hu``): the windowed image is mapped back to HU
   (the preprocessing's ``hu_window``, given to the Augmenter), ``hu * s + o`` (osteoporotic or dense bone, scanners calibrated
   differently), and windowed again. Pixels at 0 were at or below the window's low end, an
   unknown HU, and stay 0.
10. **Gamma** (``gamma``): ``x ** g`` (a non-linear HU response: cancellous vs cortical bone).
11. **Bright blobs** (``blob_n``, ``blob_radius_mm``, ``blob_value``): up to ``blob_n``
    Gaussian blobs anywhere in the image, ``max(image, value * blob)``: oral or vascular
    contrast, calcifications, metal.
12. **Noise** (``noise_std``, ``noise_corr_mm``): Gaussian noise smoothed with a Gaussian of
    the drawn correlation length and rescaled to the drawn standard deviation (CT noise is
    correlated over a few pixels), added to non-zero pixels only (zeros are far below the
    window: noise does not lift air into it).
13. **Cut-outs** (``cutout_n``, ``cutout_mm``): up to ``cutout_n`` rectangles set to 0
    (occluding anatomy, missing bone), each side drawn in ``cutout_mm``.
14. **Truncation** (``truncate_mm``): the columns within a drawn distance of one edge (left or
    right at random) set to 0: a field of view that cuts the body.

15. **Random texture** (``texture_layers``, ``texture_channels``, ``texture_mix``): the image
    goes through a shallow convolutional net with random weights drawn for this sample alone
    (``texture_layers`` layers of 1x1 or 3x3 kernels, ``texture_channels`` channels,
    leaky ReLU), rescaled to the image's own norm and mixed with the image by a weight drawn from
    ``texture_mix``. This is GIN, the global intensity non-linear augmentation of Ouyang et al.
    (2022, IEEE TMI, "Causality-inspired single-source domain generalization for medical image
    segmentation"): it changes texture and local intensity response at random while keeping
    shapes, so a net cannot rely on the phantoms' textures, only on the shape and layout of bone.

16. **Spine band** (``spine_band_mm``): the rows of one band of drawn height set to 0 across the
    whole width, centred anywhere from ``SPINE_BAND_ABOVE_MM`` above the highest labelled level
    down to the lowest (within ``SPINE_BAND_L3_MM`` of L3 for a single L3 row): one vertebra's
    look is gone, so a net cannot count from it alone. On real CT the sagittal nets counted from
    the L1-L2 region, a cue the phantoms give at a fixed level and real spines do not
    (benchmarks/README.md, ``occlusion.py --view sagittal``).

None of 8..16 moves a row, so the L3 row is exact after them.

(The module is a little over 400 lines on purpose: the steps run in one documented order on one
random stream, and splitting them across files would hide that order.)

Columns that are zero over the whole input image (the frontal side mask, canvas padding) stay
zero after zoom and deformation, so the mask geometry the net sees never changes.

The keys are those of the ``augment`` section of ``l3loc.config.DEFAULTS``. Random row windows
(positive / negative sampling) are not done here but by ``l3loc.row_windows.sample_row_window``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from l3loc.mip import VIEWS


AUGMENT_DEFAULTS: dict[str, Any] = {
    "hflip": True,                # frontal channels only, probability 1/2
    "intensity_shift": 0.05,      # add U(-a, a), in image units (1 = 1400 HU)
    "intensity_scale": 0.1,       # multiply by U(1 - a, 1 + a)
    "zoom": (0.8, 1.2),           # one factor for rows and columns; (1, 1) = off
    "deform_mm": 3.0,             # largest displacement of a control point, mm; 0 = off
    "thickness_mm": (1.0, 5.0),   # simulated slice thickness range, mm; (1, 1) = off at 1 mm
    "p": 0.8,                     # probability that a sample is augmented at all
    # domain randomisation: each step has a probability (0 = off) and ranges [lo, hi]
    "row_scale_p": 0.0,
    "row_scale": (0.9, 1.1),      # factor on rows only (vertebra height)
    "rotate_p": 0.0,
    "rotate_deg": (-10.0, 10.0),  # in-plane turn about the labelled rows on the spine, degrees
    "blur_p": 0.0,
    "blur_row_mm": (0.0, 2.0),    # Gaussian sigma along rows (slice profile), mm
    "blur_col_mm": (0.0, 1.0),    # Gaussian sigma along columns (kernel), mm
    "bone_p": 0.0,
    "bone_scale": (0.7, 1.2),     # HU multiplied by this ...
    "bone_offset_hu": (-50.0, 50.0),  # ... plus this, before the window
    "gamma_p": 0.0,
    "gamma": (0.7, 1.4),
    "blob_p": 0.0,
    "blob_n": 3,                  # at most this many blobs
    "blob_radius_mm": (3.0, 15.0),  # Gaussian sigma of a blob, mm
    "blob_value": (0.1, 0.8),     # peak value in image units (1 = 1400 HU above 100)
    "noise_p": 0.0,
    "noise_std": (0.0, 0.04),     # image units (0.04 = 56 HU)
    "noise_corr_mm": (0.5, 2.0),  # correlation length (Gaussian sigma), mm
    "cutout_p": 0.0,
    "cutout_n": 2,                # at most this many rectangles
    "cutout_mm": (10.0, 40.0),    # side of a rectangle, mm
    "truncate_p": 0.0,
    "truncate_mm": (0.0, 60.0),   # columns cut from one edge, mm
    "texture_p": 0.0,
    "texture_layers": 4,          # random conv layers (GIN)
    "texture_channels": 2,        # channels between them
    "texture_mix": (0.0, 1.0),    # weight of the random-texture image against the image
    "spine_band_p": 0.0,
    "spine_band_mm": (15.0, 35.0),  # height of the erased band of rows, mm
}

# keys of AUGMENT_DEFAULTS that are [lo, hi] ranges, with the lowest value allowed
_RANGES = {"zoom": 1e-3, "thickness_mm": 0.0, "row_scale": 1e-3, "rotate_deg": -45.0,
           "blur_row_mm": 0.0, "blur_col_mm": 0.0, "bone_scale": 1e-3, "bone_offset_hu": -np.inf,
           "gamma": 1e-3, "blob_radius_mm": 1e-3, "blob_value": 0.0,
           "noise_std": 0.0, "noise_corr_mm": 0.0, "cutout_mm": 0.0, "truncate_mm": 0.0,
           "texture_mix": 0.0, "spine_band_mm": 0.0}
_PROBABILITIES = ("p", "row_scale_p", "rotate_p", "blur_p", "bone_p", "gamma_p", "blob_p",
                  "noise_p", "cutout_p", "truncate_p", "texture_p", "spine_band_p")

# How far above the highest labelled level a spine band may be centred: about one vertebra with
# its disc; for a single L3 row, how far from L3 either way (about T11 to the sacrum).
SPINE_BAND_ABOVE_MM = 40.0
SPINE_BAND_L3_MM = 150.0

# Control rows of the deformation every 50 mm (about one lumbar vertebra with its disc): shifts
# of up to 3 mm then stretch or squeeze a vertebra's height by up to ~12 %.
DEFORM_SPACING_MM = 50.0


def _range(cfg: Mapping[str, Any], key: str, low: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in cfg[key])
    except (TypeError, ValueError):
        raise ValueError(f"augment {key} must be a pair [lo, hi], got {cfg[key]!r}") from None
    if not low <= lo <= hi:
        raise ValueError(f"augment {key} must satisfy {low:g} <= lo <= hi, got {cfg[key]!r}")
    return lo, hi


def check_augment_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``cfg`` and fill missing keys from ``AUGMENT_DEFAULTS``.

    Raises:
        ValueError: an unknown key (named, with the known ones) or a value out of range.
    """
    unknown = sorted(set(cfg) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown augment key(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(AUGMENT_DEFAULTS)}")
    out = {**AUGMENT_DEFAULTS, **cfg}
    if not isinstance(out["hflip"], bool):
        raise ValueError(f"augment hflip must be true or false, got {out['hflip']!r}")
    for key in _PROBABILITIES:
        if not 0.0 <= out[key] <= 1.0:
            raise ValueError(f"augment {key} must be in [0, 1], got {out[key]!r}")
    for key in ("blob_n", "cutout_n", "texture_layers", "texture_channels"):
        if not (isinstance(out[key], int) and out[key] >= 0):
            raise ValueError(f"augment {key} must be an integer >= 0, got {out[key]!r}")
    if not out["intensity_shift"] >= 0:
        raise ValueError(f"augment intensity_shift must be >= 0, got {out['intensity_shift']!r}")
    if not 0.0 <= out["intensity_scale"] < 1.0:
        raise ValueError(f"augment intensity_scale must be in [0, 1), got {out['intensity_scale']!r}")
    # a control point may not overtake its neighbour, or the row map would fold over itself
    if not 0.0 <= out["deform_mm"] < DEFORM_SPACING_MM / 2:
        raise ValueError(f"augment deform_mm must be in [0, {DEFORM_SPACING_MM / 2:g}), got "
                         f"{out['deform_mm']!r}")
    for key, low in _RANGES.items():
        out[key] = _range(out, key, low)
    if out["rotate_deg"][1] > 45.0:
        raise ValueError(f"augment rotate_deg must lie in [-45, 45], got {out['rotate_deg']!r}")
    if out["texture_mix"][1] > 1.0:
        raise ValueError(f"augment texture_mix must lie in [0, 1], got {out['texture_mix']!r}")
    if out["texture_p"] > 0 and (out["texture_layers"] < 1 or out["texture_channels"] < 1):
        raise ValueError("augment texture_layers and texture_channels must be >= 1 when "
                         "texture_p > 0")
    return out


def _row_knots(height_px: int, spacing_px: float, amplitude_px: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Control rows ``y`` (output) and where each samples the input, ``y + d``; d = 0 at the ends."""
    n_intervals = max(1, int(round((height_px - 1) / spacing_px)))
    y = np.linspace(0.0, height_px - 1.0, n_intervals + 1)
    d = rng.uniform(-amplitude_px, amplitude_px, size=n_intervals + 1)
    d[0] = d[-1] = 0.0
    return y, y + d


def _thick_slices(image: np.ndarray, k: int, phase: int) -> np.ndarray:
    """Keep rows ``phase, phase + k, ...`` of ``[..., H, W]`` and interpolate the rest linearly."""
    height = image.shape[-2]
    kept = np.arange(phase, height, k)
    rows = np.arange(height, dtype=np.float64)
    # position of each row between its two kept neighbours; rows outside repeat the edge row
    pos = np.clip((rows - phase) / k, 0.0, len(kept) - 1.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(kept) - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return (1.0 - w) * image[..., kept[lo], :] + w * image[..., kept[hi], :]


def random_texture(image: np.ndarray, layers: int, channels: int,
                   rng: np.random.Generator) -> np.ndarray:
    """``image`` ``[H, W]`` through a random shallow conv net (GIN), in [0, 1], same norm.

    Each layer draws its kernel size (1 or 3) and Gaussian weights; leaky ReLU (slope 0.2)
    between layers, none after the last, whose output has one channel. The output is rescaled
    to the Frobenius norm of the bone inside the window (the non-zero pixels), so the image
    keeps its overall brightness, then clipped to the window.
    """
    x = image[None].astype(np.float64)
    for layer in range(layers):
        n_out = 1 if layer == layers - 1 else channels
        k = int(rng.choice((1, 3)))
        weights = rng.standard_normal((n_out, len(x), k, k))
        bias = rng.normal(0.0, 0.1, size=n_out)
        x = np.stack([sum(ndimage.correlate(x[i], weights[o, i], mode="nearest")
                          for i in range(len(x))) + bias[o] for o in range(n_out)])
        if layer < layers - 1:
            x = np.where(x > 0, x, 0.2 * x)
    out, inside = x[0], image > 0
    if inside.sum() < 2 or np.ptp(out[inside]) == 0:
        return image.astype(np.float32)
    # a random net may invert the contrast; CT bone is always brighter than what surrounds it
    if np.corrcoef(out[inside], image[inside])[0, 1] < 0:
        out = -out
    out = out - out[inside].min()
    out *= np.linalg.norm(image[inside]) / np.linalg.norm(out[inside])
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class Augmenter:
    """Random augmentation of (image, L3 row) pairs; deterministic given ``rng``.

    Args:
        cfg: augmentation settings, keys from ``AUGMENT_DEFAULTS`` (missing keys take the
            default; unknown keys are an error).
        view: ``"frontal"`` or ``"sagittal"`` for a ``[H, W]`` image, or one view per channel
            (``("frontal", "sagittal")``) for a ``[C, H, W]`` stack that must move together:
            the geometry is shared, the flip applies to frontal channels only.
        rng: the source of randomness (``np.random.default_rng(seed)``).
        spacing_mm: pixel size of the images in mm (both axes).
        hu_window: the HU window the images were made with (``preprocess.hu_window``): image
            value ``x`` is ``lo + x * (hi - lo)`` HU; the bone HU step maps through it.

    Raises:
        ValueError: bad ``cfg``, unknown view, non-positive spacing, bad window.
    """

    def __init__(self, cfg: Mapping[str, Any], view: str | Sequence[str],
                 rng: np.random.Generator, spacing_mm: float = 1.0,
                 hu_window: Sequence[float] = (100.0, 1500.0)):
        self.cfg = check_augment_config(cfg)
        self.views = (view,) if isinstance(view, str) else tuple(view)
        bad = [v for v in self.views if v not in VIEWS]
        if bad or not self.views:
            raise ValueError(f"unknown view {view!r}; known: {', '.join(VIEWS)}")
        self.stacked = not isinstance(view, str)
        if not spacing_mm > 0:
            raise ValueError(f"spacing_mm must be positive, got {spacing_mm!r}")
        self.spacing_mm = float(spacing_mm)
        self.hu_window = tuple(float(v) for v in hu_window)
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            raise ValueError(f"hu_window must be [lo, hi] with lo < hi, got {hu_window!r}")
        self.rng = rng

    def __call__(self, image: np.ndarray, label_row: float) -> tuple[np.ndarray, float]:
        """Augment one image.

        Args:
            image: float32 ``[H, W]`` (or ``[C, H, W]`` for stacked views) in [0, 1]; not modified.
            label_row: L3 row in pixels (float), NaN if L3 is not in the image; or an array of
                rows (one per vertebral level), which all move with the image.

        Returns:
            ``(image, label_row)``: float32 of the same shape, and the new L3 row (NaN stays NaN;
            after a zoom it may fall outside ``[0, H)``, then the image no longer shows L3); an
            array of rows for an array.
        """
        img = np.asarray(image, dtype=np.float32)
        expected_ndim = 3 if self.stacked else 2
        if img.ndim != expected_ndim or (self.stacked and img.shape[0] != len(self.views)):
            raise ValueError(f"image shape {img.shape} does not match views {self.views}")
        stack = img[None] if not self.stacked else img
        stack = stack.copy()
        scalar = np.ndim(label_row) == 0
        row = float(label_row) if scalar else np.array(label_row, dtype=np.float64)
        cfg, rng = self.cfg, self.rng
        if not (cfg["p"] > 0 and rng.random() < cfg["p"]):
            return (stack if self.stacked else stack[0]), row

        if cfg["hflip"] and rng.random() < 0.5:
            for c, v in enumerate(self.views):
                if v == "frontal":
                    stack[c] = stack[c, :, ::-1].copy()

        empty_cols = ~stack.any(axis=-2)  # [C, W] masked or padded columns (after the flip)
        stack, row = self._geometry(stack, row, empty_cols)

        thickness_mm = rng.uniform(*cfg["thickness_mm"])
        k = max(1, int(round(thickness_mm / self.spacing_mm)))
        if k > 1:
            stack = _thick_slices(stack, k, int(rng.integers(0, k)))

        scale = rng.uniform(1 - cfg["intensity_scale"], 1 + cfg["intensity_scale"])
        shift = rng.uniform(-cfg["intensity_shift"], cfg["intensity_shift"])
        if scale != 1.0 or shift != 0.0:
            stack = np.where(stack > 0, np.clip(stack * scale + shift, 0.0, 1.0), 0.0)

        stack = self._randomise(stack.astype(np.float32, copy=False), empty_cols)
        if self._on("spine_band_p"):
            stack = self._spine_band(stack, row)
        out = stack.astype(np.float32, copy=False)
        return (out if self.stacked else out[0]), row

    def _spine_band(self, stack: np.ndarray, row) -> np.ndarray:
        """Step 16: one band of rows set to 0, centred on the labelled spine (none without a label)."""
        rows = np.atleast_1d(np.asarray(row, dtype=np.float64))
        rows = rows[np.isfinite(rows)]
        if not rows.size:
            return stack
        above = (SPINE_BAND_ABOVE_MM if rows.size > 1 else SPINE_BAND_L3_MM) / self.spacing_mm
        below = 0.0 if rows.size > 1 else SPINE_BAND_L3_MM / self.spacing_mm
        centre = self.rng.uniform(rows.min() - above, rows.max() + below)
        half = self.rng.uniform(*self.cfg["spine_band_mm"]) / self.spacing_mm / 2
        lo, hi = max(0, int(round(centre - half))), max(0, int(round(centre + half)))
        stack[:, lo:hi] = 0.0
        return stack

    def _on(self, key: str) -> bool:
        """Whether the step of probability ``cfg[key]`` runs (draws nothing when it is 0)."""
        return self.cfg[key] > 0 and self.rng.random() < self.cfg[key]

    def _randomise(self, stack: np.ndarray, empty_cols: np.ndarray) -> np.ndarray:
        """Steps 8..15 of the module docstring on ``[C, H, W]``; no row moves."""
        cfg, rng = self.cfg, self.rng
        mm = lambda v: v / self.spacing_mm  # noqa: E731 (mm -> pixels)
        height, width = stack.shape[-2:]
        if self._on("blur_p"):
            sigma = (0, mm(rng.uniform(*cfg["blur_row_mm"])), mm(rng.uniform(*cfg["blur_col_mm"])))
            stack = ndimage.gaussian_filter(stack, sigma, mode="nearest")
        if self._on("bone_p"):
            lo, hi = self.hu_window
            hu = lo + stack * (hi - lo)
            hu = hu * rng.uniform(*cfg["bone_scale"]) + rng.uniform(*cfg["bone_offset_hu"])
            stack = np.where(stack > 0, np.clip((hu - lo) / (hi - lo), 0.0, 1.0), 0.0)
        if self._on("gamma_p"):
            stack = stack ** rng.uniform(*cfg["gamma"])
        if self._on("blob_p"):
            rr, cc = np.mgrid[0:height, 0:width]
            for _ in range(int(rng.integers(1, cfg["blob_n"] + 1)) if cfg["blob_n"] else 0):
                r0, c0 = rng.uniform(0, height), rng.uniform(0, width)
                sigma = mm(rng.uniform(*cfg["blob_radius_mm"]))
                blob = rng.uniform(*cfg["blob_value"]) * np.exp(
                    -((rr - r0) ** 2 + (cc - c0) ** 2) / (2 * sigma ** 2))
                channel = int(rng.integers(0, len(stack)))
                stack[channel] = np.maximum(stack[channel], blob)
        if self._on("noise_p"):
            std = rng.uniform(*cfg["noise_std"])
            corr = mm(rng.uniform(*cfg["noise_corr_mm"]))
            noise = ndimage.gaussian_filter(rng.standard_normal(stack.shape), (0, corr, corr))
            noise *= std / max(float(noise.std()), 1e-12)
            stack = np.where(stack > 0, np.clip(stack + noise, 0.0, 1.0), 0.0)
        if self._on("cutout_p"):
            for _ in range(int(rng.integers(1, cfg["cutout_n"] + 1)) if cfg["cutout_n"] else 0):
                h, w = (int(round(mm(rng.uniform(*cfg["cutout_mm"])))) for _ in range(2))
                r0, c0 = int(rng.integers(0, height)), int(rng.integers(0, width))
                stack[:, max(r0 - h // 2, 0):r0 + h - h // 2, max(c0 - w // 2, 0):c0 + w - w // 2] = 0.0
        if self._on("truncate_p"):
            cut = int(round(mm(rng.uniform(*cfg["truncate_mm"]))))
            if cut > 0:
                if rng.random() < 0.5:
                    stack[..., :cut] = 0.0
                else:
                    stack[..., width - cut:] = 0.0
        if self._on("texture_p"):
            mix = rng.uniform(*cfg["texture_mix"])
            for c in range(len(stack)):
                textured = random_texture(stack[c], cfg["texture_layers"],
                                          cfg["texture_channels"], rng)
                stack[c] = np.where(stack[c] > 0, (1 - mix) * stack[c] + mix * textured, 0.0)
        stack[np.broadcast_to(empty_cols[:, None, :], stack.shape)] = 0.0
        return stack

    def _geometry(self, stack: np.ndarray, row: float, empty_cols: np.ndarray
                  ) -> tuple[np.ndarray, float]:
        """Zoom, deformation and rotation as one bilinear resampling of ``[C, H, W]``; moves
        ``row``; the ``empty_cols`` [C, W] of ``stack`` stay empty."""
        cfg, rng = self.cfg, self.rng
        height, width = stack.shape[-2:]
        zoom = rng.uniform(*cfg["zoom"])
        row_zoom = zoom * (rng.uniform(*cfg["row_scale"]) if self._on("row_scale_p") else 1.0)
        zoom = None if zoom == 1.0 and row_zoom == 1.0 else zoom
        knots = col_shift = None
        if cfg["deform_mm"] > 0:
            spacing_px = DEFORM_SPACING_MM / self.spacing_mm
            amplitude_px = cfg["deform_mm"] / self.spacing_mm
            knots = _row_knots(height, spacing_px, amplitude_px, rng)
            grid_shape = (max(2, int(round(height / spacing_px)) + 1),
                          max(2, int(round(width / spacing_px)) + 1))
            coarse = rng.uniform(-amplitude_px, amplitude_px, size=grid_shape)
            # smooth field: cubic spline through the coarse grid, corners on the image corners
            grid_r = np.linspace(0.0, grid_shape[0] - 1.0, height)
            grid_c = np.linspace(0.0, grid_shape[1] - 1.0, width)
            col_shift = ndimage.map_coordinates(
                coarse, np.meshgrid(grid_r, grid_c, indexing="ij"), order=3, mode="nearest")
        sagittal_only = all(v == "sagittal" for v in self.views)
        angle = (np.radians(rng.uniform(*cfg["rotate_deg"]))
                 if sagittal_only and self._on("rotate_p") else 0.0)
        if zoom is None and knots is None and angle == 0.0:
            return stack, row

        # where the label rows go under zoom and deformation (NaN rows stay NaN)
        centre_r, centre_c = (height - 1) / 2.0, (width - 1) / 2.0
        rows = np.atleast_1d(np.asarray(row, dtype=np.float64))
        if zoom is not None:
            rows = (rows - centre_r) * row_zoom + centre_r
        # invert the monotone row map; it is the identity outside the end rows
        inside = (rows >= 0.0) & (rows <= height - 1.0)
        if knots is not None and inside.any():
            rows[inside] = np.interp(rows[inside], knots[1], knots[0])

        # output pixel -> unrotated position -> deformed position -> input position
        out_r, out_c = np.meshgrid(np.arange(height, dtype=np.float64),
                                   np.arange(width, dtype=np.float64), indexing="ij")
        src_r, src_c = out_r, out_c
        if angle != 0.0:
            finite = rows[np.isfinite(rows)]
            pivot_r = float(finite.mean()) if finite.size else centre_r
            pivot_c = float(width // 2)
            cos, sin = np.cos(angle), np.sin(angle)
            dy, dx = out_r - pivot_r, out_c - pivot_c
            src_r, src_c = pivot_r + dy * cos + dx * sin, pivot_c - dy * sin + dx * cos
            rows = pivot_r + (rows - pivot_r) * cos
        if knots is not None:
            src_r = np.interp(src_r, *knots)
        if col_shift is not None:
            src_c = src_c + col_shift
        if zoom is not None:
            src_r = (src_r - centre_r) / row_zoom + centre_r
            src_c = (src_c - centre_c) / zoom + centre_c
        out = np.stack([ndimage.map_coordinates(ch, (src_r, src_c), order=1, mode="constant",
                                                cval=0.0) for ch in stack])
        out[np.broadcast_to(empty_cols[:, None, :], out.shape)] = 0.0
        return out, (float(rows[0]) if np.ndim(row) == 0 else rows)
