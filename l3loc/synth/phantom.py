"""Render a case plan into a canonical CT volume ``hu[slice S->I, row A->P, col R->L]`` (int16 HU).

Tissue values (HU): air -1000, lung -850, fat -100, visceral fat -90..-40, muscle 40-50, organs
30-60 (contrast: liver 110, kidney cortex 170, aorta 180-350), discs 80, CSF 15, cancellous bone
150-350 (falling with age), cortical bone 700-1200, femoral cortex up to 1400, metal 3000.
Image noise is spatially correlated Gaussian noise of 6-30 HU (more in obese patients and thin
slices); the scanner's range is [-1024, 3071].

Bone is textured (:class:`l3loc.synth.painter.Texture`): cancellous bone varies in density
(fine trabecular grain and regional variation), cortical shells in thickness. Thin shells (the
vertebral body's wall, the iliac wing's tables) are painted below solid cortical bone, as the
partial volume of a 0.5-1.5 mm cortex reads in a ~1 mm voxel; where a ray of a maximum-intensity
projection runs along such a shell (body edges, endplates, the iliac crest) it picks up the
texture's maxima and the rim reads brighter than the interior, as in real CT.

Rendering uses generators seeded from the case (``default_rng([seed, index, 1])`` for the
anatomy's values and noise, ``[seed, index, 3]`` for the texture offsets), so a case renders
identically in any process.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from l3loc.synth.acquisition import add_noise, kernel_inplane, reconstruct_coarse, tilt
from l3loc.synth.anatomy import CasePlan
from l3loc.synth.config import STYLES, choice
from l3loc.synth.painter import Lin, Painter, Texture
from l3loc.synth.scene import arms, metal_implants, metal_streaks, soft_tissue
from l3loc.synth.skeleton import chest_wall, pelvis_legs, skull, spine

AIR_HU = -1000


@dataclass
class Geo:
    """Derived shapes of one case (functions of body-frame z)."""

    s: float
    fat: float
    sx: Lin          # spine centre x
    sy: Lin          # vertebral body centre y
    a_out: Lin       # body outline half-width
    b_out: Lin       # body outline half-depth
    back_y: float

    def cy(self, z):
        return self.back_y - self.b_out(z)

    def a_m(self, z):  # inside the subcutaneous fat: the muscle wall
        return self.a_out(z) - self.fat

    def b_m(self, z):
        return self.b_out(z) - 0.85 * self.fat


def geometry(p: CasePlan) -> Geo:
    s, f = p.scale, p.fat_mm * STYLES[p.style].fat_scale   # the style's habitus: outline only
    v = {x.name: x for x in p.vertebrae}
    lm = p.landmarks
    depth = {"C": 45.0, "T": 62.0, "L": 78.0}
    sy_pts, sx_pts = [], []
    for x in p.vertebrae:
        sx_pts.append((x.z_centre, p.body_x_mm + x.x))
        if x.name == "S":   # the sacrum's y is its upper plate's, from the lumbar depth (anatomy)
            sy_pts.append((x.z_top, p.back_y_mm - 0.85 * p.fat_mm - depth["L"] * s + x.y))
        else:
            sy_pts.append((x.z_centre, p.back_y_mm - 0.85 * p.fat_mm - depth[x.name[0]] * s + x.y))
    last_t = v[f"T{p.n_rib_pairs}"]
    outline = [  # (z, half-width, half-depth) of the body outline
        (lm["vertex"], 25 * s, 30 * s),
        (lm["vertex"] - 20 * s, 62 * s, 80 * s),
        (lm["c1_top"] + 40 * s, 74 * s, 95 * s),
        (lm["c1_top"] - 15 * s, 62 * s, 78 * s),
        (v["C5"].z_centre, 55 * s + 0.4 * f, 58 * s + 0.4 * f),
        (v["C7"].z_bottom, 80 * s + 0.6 * f, 65 * s + 0.5 * f),
        (v["T1"].z_top - 15 * s, 175 * s + f, 95 * s + 0.6 * f),
        (v["T4"].z_centre, 160 * s + f, 108 * s + 0.8 * f),
        (last_t.z_centre, 148 * s + 1.2 * f, 108 * s + f),
        (v["L3"].z_centre, 143 * s + 1.3 * f, 106 * s + 1.2 * f),
        (lm["iliac_crest"], 160 * s + 1.3 * f, 108 * s + f),
        (lm["femoral_head"], 178 * s + 1.3 * f, 112 * s + 0.9 * f),
        (lm["symphysis_bottom"] - 15 * s, 165 * s + 1.2 * f, 100 * s + 0.8 * f),
    ]
    return Geo(s, f, Lin(sx_pts), Lin(sy_pts), Lin([(z, a) for z, a, _ in outline]),
                Lin([(z, b) for z, _, b in outline]), p.back_y_mm)


#: Half-width (mm) of the band around the body centre blurred by the point-spread function.
_BLUR_HALF_WIDTH_MM = 85.0


@lru_cache(maxsize=4)
def _bone_table(seed: int = 20240613, scales: tuple = ((0.9, 0.6), (4.0, 0.8))) -> Texture:
    """The bone texture table of a style, one per process (fixed seed: 1 MB and ~0.03 s CPU to make,
    the same in every process; cases differ by where each shape samples it)."""
    return Texture.make(np.random.default_rng(seed), scales_cells=scales)


def tilt_pivot_y_mm(plan: CasePlan, g=None) -> float:
    """The y (mm, the volume's centre row = 0, +posterior) about which a gantry-tilted case's
    slices lean: the L3 body's centre, where the ground truth holds."""
    g = geometry(plan) if g is None else g
    return float(g.sy(plan.vertebra("L3").z_centre))


def render_volume(plan: CasePlan, buffer: np.ndarray | None = None) -> np.ndarray:
    """Render a case.

    Args:
        plan: from :func:`l3loc.synth.anatomy.plan_case`.
        buffer: optional 1-D int16 scratch array of at least ``prod(plan.shape)`` elements to
            render into (the result is a view of it). Reusing one buffer across cases saves the
            page faults of a fresh allocation, about a fifth of the time of a large case.

    Returns:
        ``hu[slice S->I, row A->P, col R->L]`` int16, shape ``plan.acquired_shape``, spacing
        ``plan.acquired_spacing_mm`` (the rendering grid's unless the plan bins it in-plane);
        slice i is centred at body-frame z ``plan.slice_z_mm[i]``.
    """
    rng = np.random.default_rng([plan.seed, plan.index, 1])
    n, rows, cols = plan.shape
    _, dy, dx = plan.spacing_mm
    size = int(np.prod(plan.shape))
    if buffer is None:
        hu = np.full(plan.shape, AIR_HU, dtype=np.int16)
    else:
        if buffer.dtype != np.int16 or buffer.ndim != 1 or buffer.size < size:
            raise ValueError(f"buffer must be 1-D int16 with >= {size} elements")
        hu = buffer[:size].reshape(plan.shape)
        hu.fill(AIR_HU)
    x_mm = (np.arange(cols) - (cols - 1) / 2) * dx
    y_mm = (np.arange(rows) - (rows - 1) / 2) * dy
    P = Painter(hu, plan.slice_z_mm, plan.slice_thickness_mm, x_mm, y_mm)
    g = geometry(plan)
    st = STYLES[plan.style]
    # scanner choices of the style, from their own generator (the case's anatomy does not move)
    srng = np.random.default_rng([plan.seed, plan.index, 4])
    kernel = choice(srng, st.kernel_rates)
    # bone density falls with age: cancellous 350 HU at 20 years to ~150 at 90; osteoporotic
    # bone 80-150 HU (mostly below the window: the bodies show little more than their cortex) with
    # a thinner cortex
    spongy = float(np.clip(380 - 3.0 * (plan.age - 20) + rng.normal(0, 25), 130, 380))
    cortex = float(np.clip(1150 - 4.0 * (plan.age - 20) + rng.normal(0, 60), 650, 1250))
    if plan.osteoporosis:
        spongy = float(srng.uniform(80, 150))
        cortex *= float(srng.uniform(0.8, 0.95))
    soft_tissue(P, plan, g, rng)
    # a separate generator for the texture offsets keeps every other random value of a case as
    # it was before bone was textured
    trng = np.random.default_rng([plan.seed, plan.index, 3])
    table = _bone_table(st.texture_seed, st.texture_scales)
    tex = lambda amp: table.moved(trng, amp * st.texture_amp)  # noqa: E731
    skull(P, plan, g, cortex)
    spine(P, plan, g, cortex, spongy, rng, tex)
    chest_wall(P, plan, g, cortex, spongy, tex)
    pelvis_legs(P, plan, g, cortex, spongy, tex)
    arms(P, plan, g, bone=True)
    metal_implants(P, plan, g, rng)
    if plan.metal != "none":
        metal_streaks(hu, plan.spacing_mm, srng, srng.uniform(150, 450) * st.streak_scale)
    # the point-spread function only where the network looks: the frontal MIP's unmasked middle
    # (about +-77 mm of the body centre at 1 mm) holds the sagittal slab too, and only rows of
    # the body; blurring whole slices would cost a third more time per case
    col_c = plan.body_x_mm / dx + (cols - 1) / 2
    half = int(np.ceil(_BLUR_HALF_WIDTH_MM / dx))
    row_front = (g.back_y - 2 * float(g.b_out.v.max())) / dy + (rows - 1) / 2
    row_back = g.back_y / dy + (rows - 1) / 2
    kernel_inplane(hu, (int(row_front) - 2, int(row_back) + 3), (int(col_c) - half, int(col_c) + half + 2), kernel)
    if plan.tilt_deg:
        tilt(hu, plan.tilt_deg, plan.spacing_mm[0], y_mm, tilt_pivot_y_mm(plan, g))
    # kernels trade noise for sharpness: a sharp kernel's noise is stronger and finer
    noise_f, grain_f = {"soft": (0.7, 1.5), "standard": (1.0, 1.0), "sharp": (1.5, 0.6)}[kernel]
    add_noise(hu, plan.noise_hu * st.noise_scale * noise_f, rng, st.grain_px * grain_f, plan.noise_zcorr)
    return reconstruct_coarse(hu, plan.inplane_binning)
