"""The cheap part of a phantom: a *plan* (patient, spine, variants, field of view, grid) and its
exact ground truth, sampled without rendering a single voxel.

Coordinates of a plan:

- body frame z (mm, +superior): 0 = top of the sacrum (the S1 upper endplate, the "sacral
  promontory"); every anatomical landmark is placed relative to it;
- in-plane x (mm, patient right -> left, i.e. along canonical columns) and y (mm, anterior ->
  posterior, along canonical rows), both relative to the centre of the image;
- world z = body frame z + ``z_shift_mm`` (what a scanner writes into its files).

Vertebra naming (the choice for transitional anatomy, documented here once): vertebrae are named
by what they carry, as in the VerSe labelling convention (which has T13 and L6 labels):
the rib-bearing vertebrae are T1..T{n_rib_pairs}, the presacral vertebrae below them are
L1..L{n_lumbar}. **L3 is therefore always the third vertebra below the last rib-bearing one**
(the rule radiologists use when they count up from the last rib). In a case with 6 lumbar
vertebrae, counting three up from the sacrum finds L4, and in a case with 4 lumbar vertebrae L3
sits directly on the sacrum; with a very short last rib (``short_12th_rib``) the last rib is hard
to see. These cases are flagged in the ground truth so evaluations can report them apart, as the
paper's ``l3_dataset_trans.npz`` does for real transitional cases.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from l3loc.levels import LEVELS

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
class SynthConfig:
    """Rates and ranges a dataset is sampled from (probabilities sum to 1 within each dict).

    Attributes:
        fov_rates: field-of-view type -> probability.
        lumbar_rates: number of lumbar vertebrae (4, 5, 6) -> probability.
        rib_rates: number of rib pairs (11, 12, 13) -> probability.
        short_rib_rate: probability that the last rib pair is very short (10-25 mm of bone).
        contrast_rate: probability of intravenous contrast (bright aorta, kidneys, heart).
        metal_rates: metal type -> probability.
        arms_raised_rate: probability of arms above the head (otherwise beside the body).
        scoliosis_rate: probability of a lateral spinal curve of 5-25 mm.
        thickness_mm: slice thickness choices (mm; slices are contiguous) and their probabilities.
        inplane_mm: (min, max) in-plane pixel spacing in mm.
        matrix: in-plane matrix size (rows = cols).
        phase_rates: contrast phase (of cases with contrast) -> probability.
        oral_contrast_rate: probability of positive oral contrast in the bowel loops.
        osteoporosis_rate: probability, at 80 years (rising linearly from 0 at 45), of
            osteoporotic bone (cancellous 80-150 HU, thinner cortex).
        tilt_rate: probability of a gantry tilt of 5-25 degrees.
        crop_rate: probability of a tight abdominal field of view (280-380 mm, at most 92 % of the
            waist) that cuts the body
            at the sides (IRCAD-like).
        style: a name in :data:`STYLES` (rendering family; does not change the cases).
    """

    fov_rates: dict = field(default_factory=lambda: {
        "head_to_thigh": 0.15, "chest_abdomen_pelvis": 0.40, "abdomen": 0.30, "chest_only": 0.15})
    lumbar_rates: dict = field(default_factory=lambda: {4: 0.04, 5: 0.90, 6: 0.06})
    rib_rates: dict = field(default_factory=lambda: {11: 0.04, 12: 0.91, 13: 0.05})
    short_rib_rate: float = 0.08
    contrast_rate: float = 0.5
    metal_rates: dict = field(default_factory=lambda: {
        "none": 0.92, "spine_rods": 0.02, "hip_prosthesis": 0.03, "clips": 0.03})
    arms_raised_rate: float = 0.6
    scoliosis_rate: float = 0.1
    thickness_mm: dict = field(default_factory=lambda: {
        0.625: 0.04, 1.0: 0.08, 1.25: 0.08, 2.0: 0.10, 2.5: 0.20, 3.0: 0.20, 5.0: 0.30})
    inplane_mm: tuple = (0.6, 1.0)
    matrix: int = 512
    phase_rates: dict = field(default_factory=lambda: {"arterial": 0.25, "portal": 0.55, "excretory": 0.2})
    oral_contrast_rate: float = 0.25
    osteoporosis_rate: float = 0.35
    tilt_rate: float = 0.05
    crop_rate: float = 0.08
    style: str = "default"

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"unknown style {self.style!r}; known: {sorted(STYLES)}")


#: Named configurations: ``default`` and ``demo`` are realistic; ``tiny`` is 2.5-3.2 mm pixels on a
#: 160 matrix with thick slices, for tests (a case renders in a fraction of a second).
PRESETS = {
    "default": SynthConfig(),
    "demo": SynthConfig(),
    "tiny": SynthConfig(
        fov_rates={"chest_abdomen_pelvis": 0.4, "abdomen": 0.4, "chest_only": 0.2},
        thickness_mm={4.0: 0.5, 5.0: 0.5}, inplane_mm=(2.5, 3.2), matrix=160),
}
#: Number of cases a preset makes when none is asked for.
PRESET_CASES = {"default": 1000, "demo": 64, "tiny": 8}


@dataclass
class Vertebra:
    """One vertebra of the plan (body frame mm).

    Attributes:
        name: "C1".."C7", "T1".."T13", "L1".."L6" or "S" (the sacrum, S1 top to the tip).
        z_top, z_bottom: upper and lower endplate z of the body (mm, body frame).
        x, y: body centre in-plane (mm).
        a, b: half-width (left-right) and half-depth (anterior-posterior) of the body (mm).
        rib: the vertebra carries a rib pair.
        cup: depth (mm) of the hollow in the middle of each endplate: the body's bone starts
            this much inside ``z_top``/``z_bottom`` at its centre, at them only at the rim (the
            ring apophysis, from which body heights are measured).
        tilt_top, tilt_bottom: angle of each endplate against the axial plane (degrees; positive
            when its anterior edge is lower, the plate facing forwards). ``z_top``/``z_bottom``
            are the plates' heights on the body's axis; at ``dy`` mm behind it a plate lies
            ``tan(tilt) * dy`` higher. Lordotic wedging: the lumbar plates lean most at S1 (the
            sacral slope) and less upwards; a disc or body whose lower plate leans more than its
            upper one is taller anteriorly.
        fracture: "none", "wedge" (anterior height lost, posterior kept) or "crush" (both lost,
            the middle of the plates sunk: biconcave).
        density: factor on the cancellous bone's HU (compacted trabeculae of a fracture: > 1).
        spur_top, spur_bottom: length (mm) of the osteophyte lipping the anterior and lateral
            rim of each endplate (0 = none).
        bridge_below: the osteophytes of this body and the one below fuse across the disc.
    """

    name: str
    z_top: float
    z_bottom: float
    x: float
    y: float
    a: float
    b: float
    rib: bool
    cup: float = 0.0
    tilt_top: float = 0.0
    tilt_bottom: float = 0.0
    fracture: str = "none"
    density: float = 1.0
    spur_top: float = 0.0
    spur_bottom: float = 0.0
    bridge_below: bool = False

    @property
    def z_centre(self) -> float:
        return 0.5 * (self.z_top + self.z_bottom)

    def heights(self, b: float | None = None) -> tuple[float, float]:
        """(anterior, posterior) body height (mm) at ``b`` mm (default: the half-depth) in front
        of and behind the axis."""
        b = self.b if b is None else b
        d = np.tan(np.radians(self.tilt_top)) - np.tan(np.radians(self.tilt_bottom))
        h = self.z_top - self.z_bottom
        return h - b * d, h + b * d


@dataclass
class CasePlan:
    """Everything needed to render one case, and its ground truth (mm unless named otherwise)."""

    name: str
    seed: int
    index: int
    fov_type: str
    n_lumbar: int
    n_rib_pairs: int
    short_12th_rib: bool
    contrast: bool
    metal: str
    arms: str
    age: float
    scale: float            # body height scale (1 = average adult)
    fat_mm: float           # subcutaneous fat thickness at the waist
    scoliosis_mm: float     # signed amplitude of the lateral curve
    noise_hu: float         # standard deviation of the image noise
    spacing_mm: tuple       # (slice, row, col)
    shape: tuple            # (slices, rows, cols)
    z_top_mm: float         # body-frame z of the centre of canonical slice 0
    z_shift_mm: float       # world z = body-frame z + z_shift_mm
    body_x_mm: float        # patient's left-right offset in the image
    back_y_mm: float        # y of the skin of the back (the patient lies on the table there)
    vertebrae: list = field(default_factory=list)
    landmarks: dict = field(default_factory=dict)   # body-frame z of named levels
    rib_ends_deg: list = field(default_factory=list)  # bony rib extent per rib pair (top -> bottom)
    bone: dict = field(default_factory=dict)          # per-case sizes of bony parts (_bone_sizes)
    # drawn from their own generator ([seed, index, 7]) so that adding them changed no other value
    contrast_phase: str = "none"   # CONTRAST_PHASES; "none" exactly when not contrast
    oral_contrast: bool = False
    calcification: float = 0.0     # 0..1: share of the aorto-iliac wall with calcified plaque
    osteoporosis: bool = False
    dose: float = 1.0              # relative dose (noise ~ 1 / sqrt(dose * thickness))
    tilt_deg: float = 0.0          # gantry tilt (slices sheared along anterior-posterior)
    cropped: bool = False          # tight field of view cutting the body at the sides
    style: str = "default"         # STYLES name: how the case is rendered
    # drawn from their own generator ([seed, index, 8]): spine shape, arms, hardware, noise
    forearms: str = "side"         # arms down: "side" (beside the trunk) or "belly" (on the abdomen)
    screws: list = field(default_factory=list)  # vertebrae with pedicle screws ("S" = S1), cranial first
    noise_zcorr: float = 0.0       # correlation of the noise of neighbouring slices

    @property
    def slice_z_mm(self) -> np.ndarray:
        """(slices,) body-frame z of each canonical slice centre."""
        return self.z_top_mm - self.spacing_mm[0] * np.arange(self.shape[0])

    @property
    def z_first_mm(self) -> float:
        """World z of canonical slice 0 (the most superior slice)."""
        return self.z_top_mm + self.z_shift_mm

    def vertebra(self, name: str) -> Vertebra | None:
        return next((v for v in self.vertebrae if v.name == name), None)

    def _in_fov(self, z_top: float, z_bottom: float) -> bool:
        """True if some slice (with its thickness) overlaps [z_bottom, z_top] (a point when equal)."""
        z = self.slice_z_mm
        half = 0.5 * self.spacing_mm[0]
        return bool(np.any((z - half <= z_top) & (z + half >= z_bottom)))

    @property
    def l3_in_fov(self) -> bool:
        """True if some slice (with its thickness) overlaps the L3 body."""
        l3 = self.vertebra("L3")
        return self._in_fov(l3.z_top, l3.z_bottom)

    def level_extents(self) -> dict:
        """Body-frame (z_top, z_bottom, z_level) of each level of ``l3loc.levels.LEVELS`` that
        this spine has (names as defined there: T12 = the last rib-bearing vertebra, L1.. counted
        below it, S1 = the sacrum's top, a point)."""
        out = {}
        for level in LEVELS:
            name = f"T{self.n_rib_pairs}" if level == "T12" else ("S" if level == "S1" else level)
            v = self.vertebra(name)
            if v is None:
                continue
            out[level] = (v.z_top, v.z_top, v.z_top) if level == "S1" else (v.z_top, v.z_bottom, v.z_centre)
        return out

    def ground_truth(self) -> dict:
        """JSON-able ground truth: L3 centre (canonical slice, world z), every vertebra's world
        z-extent, variant flags and acquisition parameters. ``l3_slice`` is None when negative."""
        l3 = self.vertebra("L3")
        negative = not self.l3_in_fov
        row = (self.z_top_mm - l3.z_centre) / self.spacing_mm[0]
        ext = self.level_extents()
        return {
            "name": self.name, "seed": self.seed, "index": self.index,
            "negative": negative,
            "l3_slice": None if negative else float(row),
            "l3_z_mm": float(l3.z_centre + self.z_shift_mm),
            "vertebrae_z_mm": {v.name: (float(v.z_top + self.z_shift_mm), float(v.z_bottom + self.z_shift_mm))
                               for v in self.vertebrae},
            "fov_type": self.fov_type, "n_lumbar": self.n_lumbar, "n_rib_pairs": self.n_rib_pairs,
            "short_12th_rib": self.short_12th_rib, "contrast": self.contrast, "metal": self.metal,
            "arms": self.arms, "age": round(self.age, 1), "fat_mm": round(self.fat_mm, 1),
            "scoliosis_mm": round(self.scoliosis_mm, 1),
            "spacing_mm": [float(s) for s in self.spacing_mm], "shape": [int(s) for s in self.shape],
            "z_first_mm": float(self.z_first_mm),
            # every level this spine has (world z), and its canonical slice when in the field of
            # view (the L3 entry equals l3_slice); "transitional": ribs and sacrum count differently
            "levels_z_mm": {k: float(z + self.z_shift_mm) for k, (_, _, z) in ext.items()},
            "level_slices": {k: float((self.z_top_mm - z) / self.spacing_mm[0])
                             if self._in_fov(top, bottom) else None
                             for k, (top, bottom, z) in ext.items()},
            "transitional": self.n_lumbar != 5,
            "contrast_phase": self.contrast_phase, "oral_contrast": self.oral_contrast,
            "calcification": round(self.calcification, 2), "osteoporosis": self.osteoporosis,
            "tilt_deg": round(self.tilt_deg, 1), "cropped": self.cropped, "style": self.style,
            "sacral_slope_deg": round(self.vertebra("S").tilt_top, 1),
            "fractures": {v.name: v.fracture for v in self.vertebrae if v.fracture != "none"},
            "forearms": self.forearms, "screws": list(self.screws),
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _choice(rng: np.random.Generator, rates: dict):
    keys = list(rates)
    p = np.array([rates[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


#: Share of the lumbar lordosis (L1 upper to S1 upper endplate) in each lumbar disc and body,
#: from the lowest up (L5/S1, L4/5, ...; L5, L4, ...): about two thirds lie at L4-S1 and the discs
#: carry most of it, the L5 body is the most wedged (Been et al. 2010, Damasceno et al. 2006).
_DISC_SHARE = (0.30, 0.22, 0.14, 0.08, 0.04, 0.02)
_BODY_SHARE = (0.12, 0.06, 0.03, 0.01, 0.0, 0.0)


def _spine_shape(nrng: np.random.Generator, n_ribs: int, n_lumbar: int, age: float, osteo: bool) -> dict:
    """Per-case shape of the lower spine, from published ranges:

    - sacral slope 30-50 degrees; lumbar lordosis (L1-S1) = sacral slope + 10-25 degrees
      (40-75, Roussouly/Legaye), shared over the lumbar discs and bodies (``_DISC_SHARE``);
    - degenerate L4/5 and L5/S1 discs (Pfirrmann IV-V: 20-50 % of the height lost), each with a
      probability rising with age (0 at 30 years, 0.5 at 60, at most 0.7);
    - compression fractures (prevalence 1 % young, up to 9 % at 85 years, 26 % when
      osteoporotic): one or two, at T11-L2 mostly, L3-L4 occasionally; wedge (anterior height
      15-40 % lower) or crush (biconcave, the posterior height losing half as much), cancellous
      bone 1.2-1.6x denser;
    - osteophytes: severity rising from 40 years, spurs of 1.5 to 3-9 mm.
    """
    ss = float(nrng.uniform(30, 50))
    ll = ss + float(nrng.uniform(10, 25))
    dj = np.array(_DISC_SHARE[:n_lumbar]) * nrng.uniform(0.7, 1.3, n_lumbar)
    bj = np.array(_BODY_SHARE[:n_lumbar]) * nrng.uniform(0.7, 1.3, n_lumbar)
    tot = dj.sum() + bj.sum()
    p_deg = float(np.clip((age - 30) / 60, 0, 0.7))
    degen = [float(nrng.uniform(0.5, 0.8)) if nrng.random() < p_deg else 1.0 for _ in range(2)]
    fx = {}
    if nrng.random() < 0.01 + (0.25 if osteo else 0.08) * np.clip((age - 45) / 40, 0, 1):
        for _ in range(1 if nrng.random() < 0.8 else 2):
            name = _choice(nrng, {f"T{n_ribs - 1}": 0.15, f"T{n_ribs}": 0.30, "L1": 0.28, "L2": 0.14,
                                  "L3": 0.08, "L4": 0.05})
            kind = "wedge" if nrng.random() < 0.65 else "crush"
            fx[name] = (kind, float(nrng.uniform(0.15, 0.40)), float(nrng.uniform(1.2, 1.6)))
    return {"sacral_slope": ss, "disc_wedge": ll * dj / tot, "body_wedge": ll * bj / tot, "degen": degen,
            "fractures": fx, "spur_severity": float(np.clip((age - 40) / 40, 0, 1) * nrng.uniform(0.3, 1.2))}


def _build_spine(rng, n_ribs: int, n_lumbar: int, s: float, age: float = 50.0,
                 brng: np.random.Generator | None = None, shape: dict | None = None,
                 nrng: np.random.Generator | None = None) -> list[Vertebra]:
    """Stack the vertebrae upwards from the sacrum (body frame z), with growing heights.

    Lumbar bodies 25-30 mm high, 40-50 mm wide and 30-35 mm deep, growing from L1 down; discs
    8-12 mm in the lumbar spine (centre height), thinner in the thorax, narrowing with age (up
    to a third by 90, more in some people than others). ``brng`` draws what earlier phantom
    generations did not have (body width, disc ageing, endplate hollows), so the other draws of
    a case stay as they were. ``shape`` (:func:`_spine_shape`; none: level endplates) wedges the
    discs and bodies: the endplate angles run from the sacral slope at S1 up the lumbar spine,
    each disc and body turning them by its wedge, and relax to level in the lower thorax; a
    disc stays at least 1.5 mm high at its lower edge. ``nrng`` draws the osteophytes."""
    brng = np.random.default_rng(0) if brng is None else brng
    shape = shape or {"sacral_slope": 0.0, "disc_wedge": np.zeros(n_lumbar), "body_wedge": np.zeros(n_lumbar),
                      "degen": [1.0, 1.0], "fractures": {}, "spur_severity": 0.0}
    width = float(np.clip(brng.normal(1.0, 0.05), 0.88, 1.12))   # slender to stocky bodies
    ageing = float(np.clip((age - 35.0) / 55.0, 0.0, 1.0) * brng.uniform(0.1, 0.35))
    # (name, body height, disc height below it, half-width, half-depth, rib, endplate hollow),
    # caudal first
    specs = []
    for k in range(n_lumbar, 0, -1):
        f = (k - 1) / max(n_lumbar - 1, 1)            # 0 at L1, 1 at the last lumbar
        specs.append((f"L{k}", 26 + 3.5 * f, 9 + 2.5 * f, 20 + 4.5 * f, 15 + 2 * f, False, 1.6))
    for k in range(n_ribs, 0, -1):
        f = (k - 1) / max(n_ribs - 1, 1)              # 0 at T1, 1 at the last thoracic
        specs.append((f"T{k}", 17 + 7 * f, 4 + 3.5 * f, 13 + 6.5 * f, 10 + 5 * f, True, 1.0))
    for k in range(7, 0, -1):
        specs.append((f"C{k}", 13.0 if k > 1 else 9.0, 5.0, 9.5, 7.5, False, 0.5))
    verts = []
    z = 0.0
    sac = Vertebra("S", 0.0, -rng.uniform(100, 115) * s, 0.0, 0.0, 24 * s, 18 * s, False,
                   tilt_top=shape["sacral_slope"])
    t, b_below = sac.tilt_top, sac.b                  # the plate below the next disc
    t_l1 = 0.0                                        # L1's upper plate (the thorax relaxes from it)
    extra = 0.0                                       # kyphosis of a fracture below, fading upwards
    tan = lambda deg: np.tan(np.radians(deg))         # noqa: E731
    for j, (name, h, disc, a, b, rib, cup) in enumerate(specs):
        jit = rng.normal(1.0, 0.035, 3)
        d = disc * s * jit[1] * (1.0 - ageing)
        h = h * s * jit[0]
        a, b = a * s * jit[2] * width, b * s * jit[2]
        cup = float(cup * s * brng.uniform(0.7, 1.4))
        if j < n_lumbar:                              # lumbar, from the lowest up
            d *= shape["degen"][j] if j < 2 else 1.0
            dw = shape["disc_wedge"][j] * (shape["degen"][j] if j < 2 else 1.0)
            t_bot, t_top = t - dw, t - dw - shape["body_wedge"][j]
        elif name[0] == "T":                          # relax to level within a few vertebrae
            m = j - n_lumbar
            t_bot, t_top = t_l1 * 0.5 ** (2 * m + 1) + extra, t_l1 * 0.5 ** (2 * m + 2) + extra
        else:
            t_bot = t_top = 0.0
        extra *= 0.5
        fx = shape["fractures"].get(name)
        kind, density = "none", 1.0
        if fx is not None:
            kind, loss, density = fx
            h_ant = h * (1.0 - loss)
            h_post = h if kind == "wedge" else h * (1.0 - 0.5 * loss)
            h = 0.5 * (h_ant + h_post)
            k_top = np.degrees(np.arctan(tan(t_top) + (h_post - h_ant) / (2 * b)))
            extra += k_top - t_top if name[0] == "T" else 0.0
            t_top = float(k_top)
            cup *= 2.5 if kind == "crush" else 1.0
        # both edges of the disc at least 1.5 mm high
        d = max(d, max(b, b_below) * abs(tan(t) - tan(t_bot)) + 1.5)
        z_bottom = z + d
        z_top = z_bottom + h
        verts.append(Vertebra(name, z_top, z_bottom, 0.0, 0.0, a, b, rib, cup=cup, tilt_top=float(t_top),
                              tilt_bottom=float(t_bot), fracture=kind, density=density))
        z, t, b_below = z_top, t_top, b
        if name == "L1":
            t_l1 = t_top
    verts.reverse()                                   # cranial first
    verts.append(sac)
    if nrng is not None:
        _osteophytes(nrng, verts, n_ribs, shape["spur_severity"])
    return verts


def _osteophytes(nrng: np.random.Generator, verts: list[Vertebra], n_ribs: int, severity: float) -> None:
    """Endplate spurs from T{n-2} down to S1 (osteophytes: present in most people over 60,
    1.5-9 mm): each plate lipped with probability ``severity`` (at most 0.9); across a disc whose
    two plates are lipped, a bridge with probability 0.12 x severity."""
    first = next(i for i, v in enumerate(verts) if v.name == f"T{max(n_ribs - 2, 1)}")
    chain = verts[first:]
    p = min(severity, 0.9)
    for v in chain:
        for side in ("spur_top", "spur_bottom") if v.name != "S" else ("spur_top",):
            if nrng.random() < p:
                setattr(v, side, float(nrng.uniform(1.5, 3.0 + 6.0 * min(severity, 1.0))))
    for up, lo in zip(chain[:-1], chain[1:]):
        up.bridge_below = bool(up.spur_bottom > 0 and lo.spur_top > 0 and nrng.random() < 0.12 * severity)


def _bone_sizes(brng: np.random.Generator, s: float, age: float) -> dict:
    """Per-case sizes of the bony parts a bone MIP shows, from published adult ranges (mm)."""
    return {
        # transverse process of L3 beyond the pedicle (the longest; L1 and L5 are shorter)
        "tp_l3": float(brng.uniform(26, 34) * s),
        # lumbar spinous processes: broad horizontal plates 25-35 mm long, 15-20 mm high
        "spinous_l": float(brng.uniform(25, 35) * s),
        # thoracic spinous processes: long, sloping down 40-60 degrees below the horizontal
        "spinous_t_deg": float(brng.uniform(40, 60)),
        # rib cross-section: half-height of its tube (a rib is 8-12 mm high)
        "rib_r": float(brng.uniform(3.6, 4.6) * s),
        # degrees of axial rotation per mm of lateral shift of a scoliotic vertebra
        "rot_per_mm": float(brng.uniform(0.6, 1.2)),
        # sacral slope: the S1 endplate against the horizontal
        "sacral_slope_deg": float(brng.uniform(30, 45)),
        # iliac wing half-span at the crest, measured from the wing's centre
        "wing_mm": float(brng.uniform(70, 84) * s),
        # costal cartilage: fraction calcified (rises with age, varies a lot)
        "cartilage_calc": float(np.clip((age - 30) / 60 * brng.uniform(0.3, 1.3), 0, 1)),
    }


def plan_case(seed: int, index: int, config: SynthConfig = PRESETS["default"]) -> CasePlan:
    """Sample one case (cheap: no voxels). Case ``index`` of ``seed`` is always the same case,
    whatever order or worker it is made in (its generator is ``default_rng([seed, index])``).

    Args:
        seed: dataset seed.
        index: case number within the dataset.
        config: rates and ranges.

    Returns:
        The case plan; ``plan.ground_truth()`` gives its labels.
    """
    rng = np.random.default_rng([seed, index])
    n_lumbar = int(_choice(rng, config.lumbar_rates))
    n_ribs = int(_choice(rng, config.rib_rates))
    short_rib = bool(rng.random() < config.short_rib_rate)
    fov_type = _choice(rng, config.fov_rates)
    contrast = bool(rng.random() < config.contrast_rate)
    metal = _choice(rng, config.metal_rates)
    arms = "raised" if rng.random() < config.arms_raised_rate else "down"
    # head-to-thigh scans (PET/CT, trauma) are mostly taken with the arms down
    if fov_type == "head_to_thigh" and rng.random() < 0.7:
        arms = "down"
    age = float(rng.uniform(20, 90))
    s = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15))
    fat = float(np.clip(rng.gamma(2.2, 9.0), 3.0, 70.0))   # thin to obese (mean ~20 mm)
    scol = float(rng.uniform(5, 25) * rng.choice([-1, 1])) if rng.random() < config.scoliosis_rate else 0.0

    # what later phantom generations added draws from its own generator (the old draws stay):
    # [seed, index, 5] bone sizes, [7] scene (contrast, bone density, scanner), [8] spine shape,
    # arms, hardware and noise correlation
    brng = np.random.default_rng([seed, index, 5])
    r5 = np.random.default_rng([seed, index, 7])
    phase = _choice(r5, config.phase_rates) if contrast else "none"
    oral = bool(r5.random() < config.oral_contrast_rate)
    calc = float(np.clip((age - 45) / 40, 0, 1) * r5.uniform(0.2, 1.0)) if r5.random() < (age - 35) / 50 else 0.0
    osteo = bool(r5.random() < config.osteoporosis_rate * np.clip((age - 45) / 35, 0, 1))
    nrng = np.random.default_rng([seed, index, 8])
    verts = _build_spine(rng, n_ribs, n_lumbar, s, age, brng, _spine_shape(nrng, n_ribs, n_lumbar, age, osteo), nrng)
    by = {v.name: v for v in verts}
    last_rib = by[f"T{n_ribs}"]
    t1, c1 = by["T1"], by["C1"]
    z_fh = -rng.uniform(85, 105) * s                    # femoral head centres
    pen = by[f"L{n_lumbar - 1}"]                      # the last lumbar vertebra but one
    crest_lo = 0.5 * (pen.z_bottom + by[f"L{n_lumbar}"].z_top)
    crest_hi = pen.z_centre + 0.3 * (pen.z_top - pen.z_bottom)
    lm = {
        "vertex": c1.z_top + rng.uniform(95, 115) * s,
        "c1_top": c1.z_top,
        "lung_apex": t1.z_top + rng.uniform(15, 35) * s,
        "dome": by[f"T{max(n_ribs - 3, 1)}"].z_centre + rng.uniform(-15, 15),
        "last_rib_mid": last_rib.z_centre,
        # the top of the iliac crests: from the L4/L5 disc to the upper half of L4 (counted from
        # the sacrum: the pelvis goes with the sacrum, so with 6 lumbar vertebrae it lies at L5)
        "iliac_crest": crest_lo + (crest_hi - crest_lo) * rng.uniform(0, 1),
        "femoral_head": z_fh,
        "symphysis_bottom": z_fh - rng.uniform(35, 50) * s,
        "thigh_end": z_fh - 420 * s,
    }
    l3 = by["L3"]

    # lateral curve (scoliosis) peaking in the lower thorax; sagittal curves: thoracic kyphosis
    # pushes the mid-thoracic bodies backwards, lumbar lordosis pulls L3-L4 forwards
    kyph = rng.uniform(8, 22)
    lord = rng.uniform(6, 18)
    z_t7 = by["T7"].z_centre if "T7" in by else t1.z_centre
    z_l = l3.z_centre
    for v in verts:
        zc = v.z_centre
        v.x = scol * np.exp(-((zc - last_rib.z_top) / 160.0) ** 2)
        v.y = kyph * np.exp(-((zc - z_t7) / 110.0) ** 2) - lord * np.exp(-((zc - z_l) / 90.0) ** 2)
    _lordosis_from_wedges([by[f"L{k}"] for k in range(1, n_lumbar + 1)], by["S"])

    # the bony extent of each rib pair, degrees around the chest from the back: upper ribs reach
    # the front, 11th/12th are floating and short; a "short 12th rib" barely passes the
    # transverse process
    ends = []
    for k in range(1, n_ribs + 1):
        from_bottom = n_ribs - k
        if from_bottom == 0:
            ends.append(rng.uniform(28, 40) if short_rib else rng.uniform(60, 100))
        elif from_bottom == 1:
            ends.append(rng.uniform(95, 125))
        elif k == 1:
            ends.append(rng.uniform(140, 150))
        else:
            ends.append(rng.uniform(145, 158))

    # field of view (body frame z of its top and bottom slice centres)
    thick = float(_choice(rng, config.thickness_mm))
    if fov_type == "head_to_thigh":
        top = lm["vertex"] + rng.uniform(0, 20)
        bottom = z_fh - rng.uniform(200, 330) * s
    elif fov_type == "chest_abdomen_pelvis":
        top = rng.uniform(lm["dome"] + 20, lm["lung_apex"] + 40)
        bottom = lm["symphysis_bottom"] - rng.uniform(0, 50)
    elif fov_type == "abdomen":
        # liver/upper-abdomen scans: from above the dome to just below L3 (L3 near the lower
        # edge) or down to the pelvis; the lowest 1-3 rib pairs are always inside
        top = lm["dome"] + rng.uniform(0, 40)
        if rng.random() < 0.5:
            bottom = l3.z_bottom - rng.uniform(3, 40)
        else:
            bottom = lm["symphysis_bottom"] - rng.uniform(0, 50)
    else:  # chest_only: ends between T11 and just above L3: no slice may touch L3
        top = lm["lung_apex"] + rng.uniform(0, 40)
        lo = l3.z_top + thick
        bottom = rng.uniform(lo, max(by[f"T{max(n_ribs - 1, 1)}"].z_centre, lo + 1))
    n_slices = int(np.floor((top - bottom) / thick)) + 1

    # in-plane: a 512 matrix whose field of view fits the trunk (and arms when down)
    half_width = 165 * s + 1.3 * fat + (75 + 0.5 * fat if arms == "down" else 0)
    lo_px, hi_px = config.inplane_mm
    px = float(np.clip(round((2 * half_width + 30) / config.matrix, 3), lo_px, hi_px))
    fov_mm = px * config.matrix
    body_x = float(rng.uniform(-12, 12))
    # the body centre lies near the scanner's isocentre (the image centre), a little posterior;
    # the table under the back must stay in the image
    back_y = float(min(106 * s + 1.1 * fat + rng.uniform(-5, 30), fov_mm / 2 - 35))
    # the scanner: noise ~ 1 / sqrt(dose * slice thickness) (quantum noise), more in obese
    # patients; 2.5 mm at full dose gives 6-30 HU
    noise_25 = float(np.clip(10 + 0.15 * fat + rng.normal(0, 3), 6, 30))

    # the rest of r5's draws (its first ones are above, before the spine)
    dose = float(np.exp(r5.normal(0, 0.45)))        # low-dose PET/CT to full-dose CT
    tilt = float(r5.uniform(5, 25) * r5.choice([-1, 1])) if r5.random() < config.tilt_rate else 0.0
    cropped = bool(r5.random() < config.crop_rate)
    if cropped:   # a tight abdominal reconstruction: 280-380 mm and narrower than the waist
        waist = 2 * (143 * s + 1.3 * fat)
        px = float(round(min(r5.uniform(280, 380), r5.uniform(0.75, 0.92) * waist) / config.matrix, 3))
        fov_mm = px * config.matrix
        back_y = float(min(back_y, fov_mm / 2 - 10))
    noise = float(np.clip(noise_25 * np.sqrt(2.5 / (thick * dose)), 4, 90))
    bone = _bone_sizes(brng, s, age)
    bone["sacral_slope_deg"] = by["S"].tilt_top
    # arms down: the forearms beside the trunk or resting on the abdomen (hands on the belly)
    forearms = "belly" if arms == "down" and nrng.random() < 0.35 else "side"
    screws = _screw_levels(nrng, verts, n_ribs) if metal == "spine_rods" else []
    # noise of neighbouring slices: thick slices are reconstructed from thinner data with a
    # slice sensitivity profile wider than the spacing; correlation 0.1-0.5 (0-0.2 when thin)
    zcorr = float(nrng.uniform(0.1, 0.5) if thick >= 2.0 else nrng.uniform(0.0, 0.2))

    return CasePlan(
        name=f"synth_s{seed}_{index:05d}", seed=int(seed), index=int(index), fov_type=fov_type,
        n_lumbar=n_lumbar, n_rib_pairs=n_ribs, short_12th_rib=short_rib, contrast=contrast,
        metal=metal, arms=arms, age=age, scale=s, fat_mm=fat, scoliosis_mm=scol, noise_hu=noise,
        spacing_mm=(thick, px, px), shape=(n_slices, config.matrix, config.matrix),
        z_top_mm=float(top), z_shift_mm=float(np.round(rng.uniform(-500, 300), 1)),
        body_x_mm=body_x, back_y_mm=back_y, vertebrae=verts, landmarks=lm,
        rib_ends_deg=[float(e) for e in ends], bone=bone,
        contrast_phase=phase, oral_contrast=oral, calcification=calc, osteoporosis=osteo, dose=dose,
        tilt_deg=tilt, cropped=cropped, style=config.style, forearms=forearms, screws=screws,
        noise_zcorr=zcorr,
    )


def _lordosis_from_wedges(lumbar: list[Vertebra], sac: Vertebra) -> None:
    """Let the lumbar curve come from the wedges: the column's axis runs square to the endplates
    (dy/dz = -tan(tilt)), integrated up from the S1 plate. The curve's mean depth stays that of
    the former Gaussian lordosis (``v.y`` on entry), so the thorax and the organs keep their
    places; the sacrum's ``y`` becomes its upper plate's offset from the lumbar depth."""
    tan = lambda deg: np.tan(np.radians(deg))   # noqa: E731
    y, z, t = 0.0, 0.0, sac.tilt_top
    off = {}
    for v in reversed(lumbar):                  # the lowest first
        y -= (v.z_bottom - z) * tan(0.5 * (t + v.tilt_bottom))
        h = v.z_top - v.z_bottom
        mid = 0.5 * (v.tilt_bottom + v.tilt_top)
        off[v.name] = y - 0.5 * h * tan(0.5 * (v.tilt_bottom + mid))
        y -= 0.5 * h * (tan(0.5 * (v.tilt_bottom + mid)) + tan(0.5 * (mid + v.tilt_top)))
        z, t = v.z_top, v.tilt_top
    m_old = float(np.mean([v.y for v in lumbar]))
    m_off = float(np.mean(list(off.values())))
    for v in lumbar:
        v.y = m_old + off[v.name] - m_off
    sac.y = m_old - m_off


def _screw_levels(nrng: np.random.Generator, verts: list[Vertebra], n_ribs: int) -> list[str]:
    """Pedicle screws in 2-4 consecutive vertebrae (1-3 fused segments): lumbosacral fusions
    (down to S1 or the last lumbar) mostly, thoracolumbar fixations (around T12-L2, where
    fractures are) less often; a fractured vertebra is bridged (screws above and below it)."""
    names = [v.name for v in verts if v.name[0] in "TLS"]
    n = int(nrng.integers(2, 5))
    fx = [v.name for v in verts if v.fracture != "none"]
    if fx and nrng.random() < 0.7:
        i = names.index(fx[-1])
        lo = min(i + 1 + (n > 3), len(names) - 1)
        return names[max(lo - n + 1, 0):lo + 1]
    where = _choice(nrng, {"S": 0.4, "last": 0.3, "above": 0.15, "thoracolumbar": 0.15})
    lo = {"S": len(names) - 1, "last": len(names) - 2, "above": len(names) - 3,
          "thoracolumbar": names.index("L2")}[where]
    return names[lo - n + 1:lo + 1]
