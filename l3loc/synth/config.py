"""What a synthetic dataset is sampled from: the enumerations of case variants, the rendering
styles (:data:`STYLES`), the spine's anatomy families (:data:`ANATOMIES`), the sampling rates
(:class:`SynthConfig`) and the named presets (:data:`PRESETS`). The plan (anatomy.py) and the
renderer (phantom.py) both read them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: Field-of-view types, as real cohorts have them; ``chest_only`` cases do not contain L3.
FOV_TYPES = ("head_to_thigh", "chest_abdomen_pelvis", "abdomen", "chest_only")
#: Arm positions.
ARMS = ("down", "raised")
#: Metal implants ("none" = no metal).
METALS = ("none", "spine_rods", "hip_prosthesis", "clips")
#: Intravenous contrast phases ("none" = no contrast). Arterial: bright aorta, kidney cortex
#: brighter than medulla; portal: organs enhanced, kidneys homogeneous; excretory: contrast in
#: the renal pelves, ureters and bladder (hundreds to over a thousand HU).
CONTRAST_PHASES = ("none", "arterial", "portal", "excretory")
#: Reconstruction kernels: soft (smoother, less noise), standard, sharp (edge overshoot, more noise).
KERNELS = ("soft", "standard", "sharp")


@dataclass(frozen=True)
class Style:
    """A coherent family of rendering choices. Two datasets of one seed and different styles have
    the same cases (plans, skeleton, fields of view, ground truth: the plan never reads the
    style's values); only what the scanner and the soft tissue look like differs, so a net trained
    on one family and tested on another measures transfer, not memory of one generator's look.

    Attributes:
        kernel_rates: reconstruction kernel -> probability (drawn per case when rendering).
        grain_px: Gaussian sigma (px) of the noise correlation: fine grain to blotchy.
        noise_scale: multiplies the plan's noise level.
        texture_seed, texture_scales: the bone texture table (``Texture.make``'s seed and
            ``scales_cells``): trabecular grain and regional variation.
        texture_amp: multiplies the relative texture amplitudes of shells and cancellous bone.
        tissue_hu: added to muscle and unenhanced organs (scanner calibration, tissue mix).
        contrast_scale: multiplies the enhancement above 40 HU of contrast-filled structures.
        fat_scale: multiplies the subcutaneous fat when rendering (habitus of the population).
        table: "curved" (a carbon-fibre cradle with bright rails) or "flat" (a thin flat plate).
        streak_scale: multiplies the amplitude of metal streaks.
    """

    kernel_rates: dict
    grain_px: float = 0.9
    noise_scale: float = 1.0
    texture_seed: int = 20240613
    texture_scales: tuple = ((0.9, 0.6), (4.0, 0.8))
    texture_amp: float = 1.0
    tissue_hu: float = 0.0
    contrast_scale: float = 1.0
    fat_scale: float = 1.0
    table: str = "curved"
    streak_scale: float = 1.0


#: Named style families. ``default`` mixes kernels as clinical archives do; ``smooth`` is a soft
#: kernel scanner with blotchy low-frequency noise, coarse bone grain, weak contrast, a flat
#: table and heavier patients; ``sharp`` is an edge-enhancing bone kernel with fine, strong noise,
#: fine bone grain, strong contrast and thinner patients.
STYLES = {
    "default": Style(kernel_rates={"soft": 0.25, "standard": 0.5, "sharp": 0.25}),
    "smooth": Style(kernel_rates={"soft": 0.8, "standard": 0.2}, grain_px=1.8, noise_scale=0.8,
                    texture_seed=7, texture_scales=((1.6, 0.5), (7.0, 1.0)), texture_amp=0.7,
                    tissue_hu=12.0, contrast_scale=0.75, fat_scale=1.2, table="flat", streak_scale=0.6),
    "sharp": Style(kernel_rates={"sharp": 0.8, "standard": 0.2}, grain_px=0.5, noise_scale=1.3,
                   texture_seed=11, texture_scales=((0.6, 0.9), (2.5, 0.5)), texture_amp=1.3,
                   tissue_hu=-8.0, contrast_scale=1.25, fat_scale=0.8, table="curved", streak_scale=1.5),
}


@dataclass(frozen=True)
class Anatomy:
    """A family of lumbar spines: how much one level's look differs from the next's. Two datasets
    of one seed and different anatomy families have the same scans (fields of view, acquisition,
    scene, rendering): only the spine's per-level sizes and curvature are drawn from other ranges,
    so a net trained on one family and tested on another measures whether it counts the levels
    or names a vertebra by a look that one family's schedule gives each level.

    Attributes:
        level_jitter: SD of each vertebra's own size factor (body height, disc, width and depth),
            on top of the case's scale.
        body_growth, disc_growth: (min, max) factor on how much the lumbar bodies (3.5 mm) and
            discs (2.5 mm) grow from L1 to the last lumbar, drawn per case (1: the mean schedule;
            0: every lumbar level alike).
        sacral_slope_deg: (min, max) sacral slope.
        lordosis_over_slope_deg: (min, max) of the lumbar lordosis (L1-S1) minus the sacral slope.
        wedge_spread: each lumbar disc's and body's share of the lordosis is its mean share times
            a factor in 1 +- ``wedge_spread`` (0.3: the published lower-lumbar bias holds in
            every case; near 1: some spines bend most at L2-L3).
        arch_transition: where the arches turn from thoracic to lumbar (spinous process,
            pedicles, canal), as a shift from the last rib-bearing vertebra -> probability: 0 =
            at it (the last rib-bearing vertebra has a thoracic arch, the next one a lumbar
            arch), -1 = one vertebra higher (the last rib-bearing one has a lumbar arch), +1 =
            one lower (the first vertebra without ribs still has a thoracic arch). The facet
            transition lies at T11-T12 or T12-L1 and spreads over two levels in many spines
            (Singer et al. 1989; Masharawi et al. 2004): the arches are no exact count.
        pedicle_growth: (min, max) factor on how much the lumbar pedicles widen from L1 to the
            last lumbar (1: 7 to 14 mm, the mean of Zindrick et al. 1987).
        process_jitter: SD of each level's own factor on its pedicle width and transverse
            process length (L3's processes are the longest in most spines, not in all).
        arch_taper: (min, max) of how many levels above the transition the thoracic arches
            grade into lumbar ones, drawn per case (0: the last thoracic arch is a full thoracic
            one, long and sloping). Real lower thoracic spinous processes shorten, flatten and
            grow taller towards T12, whose process is nearly a lumbar plate (Gray's Anatomy;
            Masharawi et al. 2004): the change is spread over levels, not one step.
    """

    level_jitter: float = 0.035
    body_growth: tuple = (1.0, 1.0)
    disc_growth: tuple = (1.0, 1.0)
    sacral_slope_deg: tuple = (30.0, 50.0)
    lordosis_over_slope_deg: tuple = (10.0, 25.0)
    wedge_spread: float = 0.3
    arch_transition: dict = field(default_factory=lambda: {0: 1.0})
    pedicle_growth: tuple = (1.0, 1.0)
    process_jitter: float = 0.0
    arch_taper: tuple = (0.0, 0.0)


#: Named anatomy families. ``default`` is the mean schedule of the literature with small per-level
#: scatter: lumbar bodies and discs grow from L1 down in every case and two thirds of the lordosis
#: lies at L4-S1. ``varied`` spreads each to the ends of what individual spines show (per-level
#: sizes scattered by 8 %, growth from none to twice the mean, lordosis 20-85 degrees, each
#: level's share of it 0.1-1.9 times the mean; the arches turning lumbar one vertebra above or
#: below the last rib-bearing one in half the cases, lumbar pedicles widening 0.4-1.6 times the
#: mean, each level's processes scattered by 12 %, the thoracic arches grading into lumbar ones
#: over 0-2.5 levels above the transition): a held-out family for transfer tests.
ANATOMIES = {
    "default": Anatomy(),
    "varied": Anatomy(level_jitter=0.08, body_growth=(0.0, 2.0), disc_growth=(0.0, 2.0),
                      sacral_slope_deg=(20.0, 55.0), lordosis_over_slope_deg=(0.0, 30.0),
                      wedge_spread=0.9, arch_transition={-1: 0.25, 0: 0.5, 1: 0.25},
                      pedicle_growth=(0.4, 1.6), process_jitter=0.12, arch_taper=(0.0, 2.5)),
}


@dataclass(frozen=True)
class SynthConfig:
    """Rates and ranges a dataset is sampled from (probabilities sum to 1 within each dict).

    Attributes:
        fov_rates: field-of-view type -> probability.
        lumbar_rates: number of lumbar vertebrae (4, 5, 6) -> probability.
        rib_rates: number of rib pairs (11, 12, 13) -> probability.
        short_rib_rate: probability that the last rib pair is a stub (5-30 mm of bone beyond the
            tubercle, slimmer than the ribs above; ``bone["short_rib_mm"]``).
        contrast_rate: probability of intravenous contrast (bright aorta, kidneys, heart).
        metal_rates: metal type -> probability.
        arms_raised_rate: probability of arms above the head (otherwise beside the body).
        scoliosis_rate: probability of a lateral spinal curve of 5-25 mm.
        thickness_mm: slice spacing choices (mm) and their probabilities; the slices are as thick
            as their spacing (contiguous) unless overlapping.
        overlap_rate: probability of an overlapping reconstruction: slices thicker than their
            spacing (1.25 mm every 0.625 mm, 3 mm every 1.5 mm, 5 mm every 2.5 mm; a PET/CT's
            5 mm every 3.3 mm), their thickness ``overlap`` (min, max) times the spacing.
        inplane_mm: (min, max) in-plane pixel spacing in mm.
        matrix: in-plane matrix size (rows = cols).
        phase_rates: contrast phase (of cases with contrast) -> probability.
        oral_contrast_rate: probability of positive oral contrast in the bowel loops.
        osteoporosis_rate: probability, at 80 years (rising linearly from 0 at 45), of
            osteoporotic bone (cancellous 80-150 HU, thinner cortex).
        tilt_rate: probability of a gantry tilt of 5-25 degrees.
        low_top_rate: probability that an ``abdomen`` scan starts below the usual top (just
            above the diaphragm's dome): anywhere between there and 10 mm above L3, so the first
            vertebra of a scan may be any from T8 to L2, with the last ribs partly or wholly
            above it.
        crop_rate: probability of a tight abdominal field of view (280-380 mm, at most 92 % of the
            waist) that cuts the body
            at the sides (IRCAD-like).
        lowres_rate: probability of a low-resolution reconstruction (PET/CT attenuation CT,
            downsampled archives): in-plane pixels of ``lowres_mm`` (min, max) mm, each the mean
            of the rendered pixels it covers.
        arch_of_cortex: (min, max) brightness of the vertebral arches (laminae, articular and
            spinous processes) as a fraction of solid cortical bone, drawn per case
            (``spine.bone_sizes``); one value (min = max) makes a dataset whose plans are those of
            the same seed with every arch at that brightness (a paired test).
        style: a name in :data:`STYLES` (rendering family; does not change the cases).
        anatomy: a name in :data:`ANATOMIES` (the spines' family; does not change the scans).
    """

    fov_rates: dict = field(default_factory=lambda: {
        "head_to_thigh": 0.15, "chest_abdomen_pelvis": 0.40, "abdomen": 0.30, "chest_only": 0.15})
    lumbar_rates: dict = field(default_factory=lambda: {4: 0.04, 5: 0.90, 6: 0.06})
    rib_rates: dict = field(default_factory=lambda: {11: 0.04, 12: 0.91, 13: 0.05})
    short_rib_rate: float = 0.15
    contrast_rate: float = 0.5
    metal_rates: dict = field(default_factory=lambda: {
        "none": 0.92, "spine_rods": 0.02, "hip_prosthesis": 0.03, "clips": 0.03})
    arms_raised_rate: float = 0.6
    scoliosis_rate: float = 0.1
    thickness_mm: dict = field(default_factory=lambda: {
        0.625: 0.04, 1.0: 0.08, 1.25: 0.08, 2.0: 0.10, 2.5: 0.20, 3.0: 0.20, 5.0: 0.30})
    overlap_rate: float = 0.3
    overlap: tuple = (1.25, 2.0)
    inplane_mm: tuple = (0.6, 1.0)
    matrix: int = 512
    phase_rates: dict = field(default_factory=lambda: {"arterial": 0.25, "portal": 0.55, "excretory": 0.2})
    oral_contrast_rate: float = 0.25
    osteoporosis_rate: float = 0.35
    tilt_rate: float = 0.05
    low_top_rate: float = 0.5
    crop_rate: float = 0.08
    lowres_rate: float = 0.1
    lowres_mm: tuple = (2.0, 5.0)
    arch_of_cortex: tuple = (0.55, 1.1)
    style: str = "default"
    anatomy: str = "default"

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; known: {sorted(STYLES)}")
        if self.anatomy not in ANATOMIES:
            raise ValueError(f"unknown anatomy {self.anatomy!r}; known: {sorted(ANATOMIES)}")
        lo, hi = self.arch_of_cortex
        if not 0.0 < lo <= hi:
            raise ValueError(f"arch_of_cortex {self.arch_of_cortex}: want 0 < min <= max (fractions of cortical bone)")


#: Named configurations: ``default`` and ``demo`` are realistic; ``tiny`` is 2.5-3.2 mm pixels on a
#: 160 matrix with thick slices, for tests (a case renders in a fraction of a second).
PRESETS = {
    "default": SynthConfig(),
    "demo": SynthConfig(),
    "tiny": SynthConfig(
        fov_rates={"chest_abdomen_pelvis": 0.4, "abdomen": 0.4, "chest_only": 0.2},
        thickness_mm={4.0: 0.5, 5.0: 0.5}, inplane_mm=(2.5, 3.2), matrix=160, lowres_rate=0.0),
}
#: Number of cases a preset makes when none is asked for.
PRESET_CASES = {"default": 1000, "demo": 64, "tiny": 8}


def with_unusual_spines(config: SynthConfig, share: float) -> SynthConfig:
    """``config`` with a share of transitional spines (4 or 6 lumbar vertebrae, half each) and,
    drawn apart, the same share of 11 or 13 rib pairs; everything else unchanged."""
    return replace(config, lumbar_rates={4: share / 2, 5: 1 - share, 6: share / 2},
                   rib_rates={11: share / 2, 12: 1 - share, 13: share / 2})


def choice(rng: np.random.Generator, rates: dict):
    keys = list(rates)
    p = np.array([rates[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]
