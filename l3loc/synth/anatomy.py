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
from l3loc.synth.config import ANATOMIES, PRESETS, SynthConfig, choice
from l3loc.synth.spine import (Vertebra, bone_sizes, build_spine, lordosis_from_wedges, screw_levels, spine_shape,
                               taper_arches, vary_level_features, vary_posterior_elements)


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
    rib_ends_deg: list = field(default_factory=list)  # bony rib extent per rib pair (top -> bottom;
    #                                                   0: a stub, bone["short_rib_mm"] long)
    bone: dict = field(default_factory=dict)          # per-case sizes of bony parts (bone_sizes)
    # drawn from their own generator ([seed, index, 7]) so that adding them changed no other value
    contrast_phase: str = "none"   # CONTRAST_PHASES; "none" exactly when not contrast
    oral_contrast: bool = False
    calcification: float = 0.0     # 0..1: share of the aorto-iliac wall with calcified plaque
    osteoporosis: bool = False
    dose: float = 1.0              # relative dose (noise ~ 1 / sqrt(dose * thickness))
    tilt_deg: float = 0.0          # gantry tilt (slices sheared along anterior-posterior)
    cropped: bool = False          # tight field of view cutting the body at the sides
    style: str = "default"         # STYLES name: how the case is rendered
    anatomy: str = "default"       # ANATOMIES name: the family its spine was drawn from
    arch_transition: int = 0       # where the arches turn lumbar, from below the last rib (Anatomy)
    arch_taper: float = 0.0        # over how many levels above it the thoracic arches grade lumbar
    # drawn from their own generator ([seed, index, 8]): spine shape, arms, hardware, noise
    forearms: str = "side"         # arms down: "side" (beside the trunk) or "belly" (on the abdomen)
    screws: list = field(default_factory=list)  # vertebrae with pedicle screws ("S" = S1), cranial first
    noise_zcorr: float = 0.0       # correlation of the noise of neighbouring slices
    # drawn from its own generator ([seed, index, 9]): a low-resolution reconstruction (the CT of a
    # PET/CT rebuilt on the PET's 4 mm grid, a downsampled archive). The case is rendered on
    # ``spacing_mm``, smoothed and binned ``inplane_binning`` x ``inplane_binning`` in-plane
    # (acquisition.reconstruct_coarse): thin bone (ribs, cortices, processes) fades by partial
    # volume, as in such scans
    inplane_binning: int = 1
    # drawn from its own generator ([seed, index, 10]): the slice thickness over the spacing
    # (an overlapping reconstruction when > 1: every slice sees its neighbours' anatomy, the
    # discs and endplates blur along z as in such scans; 1 = contiguous slices)
    slice_overlap: float = 1.0

    @property
    def slice_thickness_mm(self) -> float:
        """Thickness of each slice's box profile (the spacing times :attr:`slice_overlap`)."""
        return self.spacing_mm[0] * self.slice_overlap

    @property
    def acquired_spacing_mm(self) -> tuple:
        """(slice, row, col) spacing of the scan as written (the rendering grid's, binned)."""
        b = self.inplane_binning
        return (self.spacing_mm[0], self.spacing_mm[1] * b, self.spacing_mm[2] * b)

    @property
    def acquired_shape(self) -> tuple:
        """(slices, rows, cols) of the scan as written."""
        b = self.inplane_binning
        return (self.shape[0], self.shape[1] // b, self.shape[2] // b)

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
        half = 0.5 * self.slice_thickness_mm
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
            "spacing_mm": [float(s) for s in self.acquired_spacing_mm],
            "shape": [int(s) for s in self.acquired_shape],
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
            "anatomy": self.anatomy, "arch_transition": self.arch_transition,
            "arch_taper": round(self.arch_taper, 2),
            "sacral_slope_deg": round(self.vertebra("S").tilt_top, 1),
            # the posterior elements' look as the case drew it (spine.bone_sizes)
            "arch_of_cortex": round(self.bone["arch"], 2), "tp_root_of_cortex": round(self.bone["tp_root"], 2),
            "tp_tip_of_root": round(self.bone["tp_tip"], 2),
            # the lowest ribs' look: their descent from the tubercle, and a stub's length
            "low_rib_deg": round(self.bone["low_rib_deg"], 1),
            "short_rib_mm": round(self.bone["short_rib_mm"], 1) if self.short_12th_rib else None,
            "fractures": {v.name: v.fracture for v in self.vertebrae if v.fracture != "none"},
            "forearms": self.forearms, "screws": list(self.screws),
            "inplane_binning": self.inplane_binning,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _moved_by_levels(verts: list[Vertebra], name: str, t: float) -> float:
    """z of ``name``'s body centre moved ``t`` vertebrae up (t > 0) or down, between the
    neighbouring centres (the sacrum's upper plate below the last lumbar vertebra)."""
    zs = [v.z_centre if v.name != "S" else v.z_top for v in verts]   # cranial first
    k = [v.name for v in verts].index(name)
    return float(np.interp(k - t, np.arange(len(zs)), zs))


def organ_levels(orng: np.random.Generator, verts: list[Vertebra], n_lumbar: int, s: float) -> dict:
    """Levels of the organs that lie beside the lumbar spine, which real bodies do not place at
    one vertebra (so a net cannot name a vertebra by them): the aortic bifurcation at L4 in about
    two thirds of people, from upper L3 to L5's centre (Chithriki et al. 2002; here its level in
    vertebrae from L4's centre has an SD of 0.45) with the IVC's confluence 10-35 mm lower; the
    kidneys' centres around L1 (SD half a vertebra), the right one 0-30 mm below the left."""
    l4 = f"L{min(4, n_lumbar)}"
    bif = _moved_by_levels(verts, l4, float(np.clip(orng.normal(0.0, 0.45), -1.0, 1.3)))
    left = _moved_by_levels(verts, "L1", float(np.clip(orng.normal(0.0, 0.5), -1.2, 1.2)))
    return {"aortic_bifurcation": bif, "ivc_confluence": bif - orng.uniform(10, 35) * s,
            "kidney_left": left, "kidney_right": left - orng.uniform(0, 30) * s}


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
    n_lumbar = int(choice(rng, config.lumbar_rates))
    n_ribs = int(choice(rng, config.rib_rates))
    short_rib = bool(rng.random() < config.short_rib_rate)
    fov_type = choice(rng, config.fov_rates)
    contrast = bool(rng.random() < config.contrast_rate)
    metal = choice(rng, config.metal_rates)
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
    # arms, hardware and noise correlation, [9] in-plane resolution, [10] the posterior elements
    # and overlapping slices, [11] the lumbar growth of the anatomy family, [12] organ levels,
    # [13] the family's per-level arches and processes, [14] the taper of the thoracic arches,
    # [15] where an abdominal scan starts
    brng = np.random.default_rng([seed, index, 5])
    r5 = np.random.default_rng([seed, index, 7])
    phase = choice(r5, config.phase_rates) if contrast else "none"
    oral = bool(r5.random() < config.oral_contrast_rate)
    calc = float(np.clip((age - 45) / 40, 0, 1) * r5.uniform(0.2, 1.0)) if r5.random() < (age - 35) / 50 else 0.0
    osteo = bool(r5.random() < config.osteoporosis_rate * np.clip((age - 45) / 35, 0, 1))
    nrng = np.random.default_rng([seed, index, 8])
    shape = spine_shape(nrng, n_ribs, n_lumbar, age, osteo, ANATOMIES[config.anatomy],
                        np.random.default_rng([seed, index, 11]))
    verts = build_spine(rng, n_ribs, n_lumbar, s, age, brng, shape, nrng)
    vary_posterior_elements(np.random.default_rng([seed, index, 10]), verts, s)
    arch_shift = vary_level_features(np.random.default_rng([seed, index, 13]), verts, ANATOMIES[config.anatomy])
    arch_taper = taper_arches(np.random.default_rng([seed, index, 14]), verts, ANATOMIES[config.anatomy])
    by = {v.name: v for v in verts}
    last_rib = by[f"T{n_ribs}"]
    t1, c1 = by["T1"], by["C1"]
    z_fh = -rng.uniform(85, 105) * s                    # femoral head centres
    pen = by[f"L{n_lumbar - 1}"]                      # the last lumbar vertebra but one
    crest_lo = by[f"L{n_lumbar}"].z_centre
    crest_hi = pen.z_centre + 0.3 * (pen.z_top - pen.z_bottom)
    lm = {
        "vertex": c1.z_top + rng.uniform(95, 115) * s,
        "c1_top": c1.z_top,
        "lung_apex": t1.z_top + rng.uniform(15, 35) * s,
        "dome": by[f"T{max(n_ribs - 3, 1)}"].z_centre + rng.uniform(-15, 15),
        "last_rib_mid": last_rib.z_centre,
        # the top of the iliac crests: from the middle of L5 to the upper half of L4 (counted from
        # the sacrum: the pelvis goes with the sacrum, so with 6 lumbar vertebrae it lies at L5-L6).
        # Down to L5 since generation 26 (the L4/L5 disc before): AP radiographs put the
        # intercristal line anywhere from L4's upper third to L5's middle third, lower in women
        # and the young. One uniform draw as before: every other value stays.
        "iliac_crest": crest_lo + (crest_hi - crest_lo) * rng.uniform(0, 1),
        "femoral_head": z_fh,
        "symphysis_bottom": z_fh - rng.uniform(35, 50) * s,
        "thigh_end": z_fh - 420 * s,
    }
    lm.update(organ_levels(np.random.default_rng([seed, index, 12]), verts, n_lumbar, s))
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
    lordosis_from_wedges([by[f"L{k}"] for k in range(1, n_lumbar + 1)], by["S"])

    # the bony extent of each rib pair, degrees around the chest from the back: upper ribs reach
    # the front, 11th/12th are floating and short. A "short 12th rib" is a stub that barely
    # passes the transverse process: its length beyond the tubercle is drawn in mm (a few
    # degrees of a wide chest are 50-90 mm in a frontal view; ircad_07's stubs end about 25 mm
    # out), its angle left to the skeleton, which knows the chest's width there
    ends, short_rib_mm = [], 0.0
    for k in range(1, n_ribs + 1):
        from_bottom = n_ribs - k
        if from_bottom == 0:
            if short_rib:
                short_rib_mm = float(rng.uniform(5, 30))
                ends.append(0.0)
            else:
                ends.append(rng.uniform(60, 100))
        elif from_bottom == 1:
            ends.append(rng.uniform(95, 125))
        elif k == 1:
            ends.append(rng.uniform(140, 150))
        else:
            ends.append(rng.uniform(145, 158))

    # field of view (body frame z of its top and bottom slice centres); ``thick`` is the slice
    # spacing, the slices are ``overlap`` times as thick
    thick = float(choice(rng, config.thickness_mm))
    orng = np.random.default_rng([seed, index, 10])
    overlap = float(orng.uniform(*config.overlap)) if orng.random() < config.overlap_rate else 1.0
    if fov_type == "head_to_thigh":
        top = lm["vertex"] + rng.uniform(0, 20)
        bottom = z_fh - rng.uniform(200, 330) * s
    elif fov_type == "chest_abdomen_pelvis":
        top = rng.uniform(lm["dome"] + 20, lm["lung_apex"] + 40)
        bottom = lm["symphysis_bottom"] - rng.uniform(0, 50)
    elif fov_type == "abdomen":
        # liver/upper-abdomen scans: from above the dome down to anywhere between just below
        # L3 and the top of the sacrum (real protocols stop through the kidneys, at the crests,
        # above the pelvis: a scan without the sacrum must not tell how far below L3 it ends),
        # or down to the pelvis
        top = lm["dome"] + rng.uniform(0, 40)
        # some start lower, anywhere from the dome down to 10 mm above L3 (lumbar-spine and
        # renal protocols, crops of longer scans: the real example CT starts in T11, lumbar
        # protocols in L1 or L2): where the scan starts must not tell which vertebra is the
        # first one in it. Down to L2 since generation 25 (10 mm above L2 before: a real scan
        # cut 60 mm over L3, starting near the L1/L2 disc at the edge of that range, was read a
        # vertebra low, its first whole vertebra taken for L1). Its own generator: every other
        # value of the case stays.
        trng = np.random.default_rng([seed, index, 15])
        if trng.random() < config.low_top_rate:
            top = float(trng.uniform(by["L3"].z_top + 10, top))
        if rng.random() < 0.5:
            bottom = l3.z_bottom - rng.uniform(3, max(l3.z_bottom, 40.0))
        else:
            bottom = lm["symphysis_bottom"] - rng.uniform(0, 50)
    else:  # chest_only: ends between T11 and just above L3: no slice may touch L3
        top = lm["lung_apex"] + rng.uniform(0, 40)
        lo = l3.z_top + 0.5 * thick * (1 + overlap)     # the lowest slice's profile ends above L3
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
    noise = float(np.clip(noise_25 * np.sqrt(2.5 / (thick * overlap * dose)), 4, 90))
    bone = bone_sizes(brng, s, age, config.arch_of_cortex)
    bone["sacral_slope_deg"] = by["S"].tilt_top
    bone["short_rib_mm"] = short_rib_mm
    # arms down: the forearms beside the trunk or resting on the abdomen (hands on the belly)
    forearms = "belly" if arms == "down" and nrng.random() < 0.35 else "side"
    screws = screw_levels(nrng, verts, n_ribs) if metal == "spine_rods" else []
    # noise of neighbouring slices: thick slices are reconstructed from thinner data with a
    # slice sensitivity profile wider than the spacing; correlation 0.1-0.5 (0-0.2 when thin)
    zcorr = float(nrng.uniform(0.1, 0.5) if thick >= 2.0 else nrng.uniform(0.0, 0.2))
    zcorr = max(zcorr, 1.0 - 1.0 / overlap)   # overlapping slices share that much of their data
    lrng = np.random.default_rng([seed, index, 9])
    binning = 1
    if lrng.random() < config.lowres_rate:   # in-plane pixels of lowres_mm, at least twice the grid's
        binning = max(2, int(round(lrng.uniform(*config.lowres_mm) / px)))

    return CasePlan(
        name=f"synth_s{seed}_{index:05d}", seed=int(seed), index=int(index), fov_type=fov_type,
        n_lumbar=n_lumbar, n_rib_pairs=n_ribs, short_12th_rib=short_rib, contrast=contrast,
        metal=metal, arms=arms, age=age, scale=s, fat_mm=fat, scoliosis_mm=scol, noise_hu=noise,
        spacing_mm=(thick, px, px), shape=(n_slices, config.matrix, config.matrix),
        z_top_mm=float(top), z_shift_mm=float(np.round(rng.uniform(-500, 300), 1)),
        body_x_mm=body_x, back_y_mm=back_y, vertebrae=verts, landmarks=lm,
        rib_ends_deg=[float(e) for e in ends], bone=bone,
        contrast_phase=phase, oral_contrast=oral, calcification=calc, osteoporosis=osteo, dose=dose,
        tilt_deg=tilt, cropped=cropped, style=config.style, anatomy=config.anatomy,
        arch_transition=arch_shift, arch_taper=arch_taper,
        forearms=forearms, screws=screws, noise_zcorr=zcorr, inplane_binning=binning, slice_overlap=overlap,
    )
