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
from scipy.ndimage import gaussian_filter

from l3loc.synth.anatomy import STYLES, CasePlan, _choice
from l3loc.synth.painter import Lin, Painter, Texture

AIR_HU = -1000
HU_RANGE = (-1024, 3071)


@dataclass
class _Geo:
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


def _geometry(p: CasePlan) -> _Geo:
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
    return _Geo(s, f, Lin(sx_pts), Lin(sy_pts), Lin([(z, a) for z, a, _ in outline]),
                Lin([(z, b) for z, _, b in outline]), p.back_y_mm)


def _enhanced(p: CasePlan, values: dict, rng) -> float:
    """A tissue's HU in the case's contrast phase: ``values`` maps a phase to a (lo, hi) range or
    a number; the enhancement above 40 HU is scaled by the style (weaker or stronger contrast)."""
    v = values.get(p.contrast_phase, values["none"])
    hu = float(rng.uniform(*v)) if isinstance(v, tuple) else float(v)
    return 40 + STYLES[p.style].contrast_scale * (hu - 40) if hu > 40 else hu


def _table(hu: np.ndarray, p: CasePlan, y_mm: np.ndarray, x_mm: np.ndarray, rng) -> None:
    """The patient table under the whole scan, painted into every slice at once (it does not
    change along z). Curved: a carbon-fibre cradle (0.5-1 mm shells around foam) rising beside
    the back, with dense rails at its edges; flat: a flat sandwich plate. Only its rows are
    touched. The shells are painted at least a pixel thick, so their value is the partial volume
    of a thin shell in a pixel: -200..250 HU, mostly below the [100, 1500] window. Painted at a
    thin shell's full density (100-600 HU) the table lit a uniform band over the whole frontal
    MIP, which no real scan of the validation set shows (a shortcut for the nets)."""
    flat = STYLES[p.style].table == "flat"
    y0 = p.back_y_mm + 1.0                         # the patient lies on it
    r0, r1 = np.searchsorted(y_mm, [y0 - 70, y0 + 40])
    if r1 <= r0:
        return
    yy, xx = np.meshgrid(y_mm[r0:r1] - y0, x_mm, indexing="ij")
    shell = rng.uniform(-200, 250)
    if flat:
        depth = 0.0 * xx
        half_w = 240.0
    else:   # the cradle rises towards its edges: depth(x) = c * x^2 at its upper surface
        half_w = rng.uniform(200, 250)
        depth = -rng.uniform(25, 55) * (xx / half_w) ** 2
    inside = np.abs(xx) <= half_w
    d = yy - depth                                  # mm below the upper surface
    t = rng.uniform(18, 35)                         # plate thickness
    val = np.full(yy.shape, np.nan, dtype=np.float32)
    val[inside & (d >= 0) & (d < t)] = -850         # foam core
    sh = max(2.0, float(abs(y_mm[1] - y_mm[0])))   # shells of at least a pixel: no gaps on coarse grids
    val[inside & (((d >= 0) & (d < sh)) | ((d >= t - sh) & (d < t)))] = shell
    rails = inside & (np.abs(xx) > half_w - 12) & (d >= -6) & (d < t)
    val[rails] = rng.uniform(300, 900)
    m = np.isfinite(val)
    sub = hu[:, r0:r1, :]
    np.copyto(sub, np.rint(np.nan_to_num(val)).astype(np.int16)[None], where=m[None])


def _soft_tissue(P: Painter, p: CasePlan, g: _Geo, rng) -> None:
    s, f, lm = g.s, g.fat, p.landmarks
    v = {x.name: x for x in p.vertebrae}
    bx = p.body_x_mm
    st = STYLES[p.style]
    muscle = 45 + st.tissue_hu
    # contrast uses its own generator: the values drawn from rng stay those of earlier versions
    crng = np.random.default_rng([p.seed, p.index, 6])
    z_trunk_lo = lm["symphysis_bottom"] - 15 * s
    z_top = lm["vertex"]
    _table(P.hu, p, P.y, P.x, crng)
    # trunk and head: fat, then the muscle wall
    P.ellipse(z_trunk_lo, z_top, bx, g.cy, g.a_out, g.b_out, -100 + rng.normal(0, 8))
    P.ellipse(z_trunk_lo, z_top - 8, bx, g.cy, g.a_m, g.b_m, muscle)
    # thighs below the trunk
    th_r = Lin([(lm["femoral_head"], 78 * s + 0.8 * f), (lm["thigh_end"], 58 * s + 0.6 * f)])
    th_rm = Lin([(lm["femoral_head"], 78 * s), (lm["thigh_end"], 58 * s)])
    for sg in (-1, 1):
        cx = lambda z, sg=sg: bx + sg * (88 * s + 0.4 * f) + 0 * z
        cyl = lambda z: g.back_y - th_r(z)
        P.ellipse(lm["thigh_end"] - 100, lm["femoral_head"] - 20 * s, cx, cyl, th_r, th_r, -100)
        P.ellipse(lm["thigh_end"] - 100, lm["femoral_head"] - 20 * s, cx, cyl, th_rm, th_rm, muscle)
    # arms: soft tissue now, bone later
    _arms(P, p, g, bone=False)
    # visceral compartment (chest and abdomen): organs in visceral fat
    visc = rng.uniform(-95, -45)
    zc_lo, zc_hi = lm["femoral_head"] - 20 * s, v["T1"].z_top
    a_v = lambda z: g.a_m(z) - 14 * s
    b_v = lambda z: g.b_m(z) - 16 * s
    cy_v = lambda z: g.cy(z) - 6 * s
    P.ellipse(zc_lo, zc_hi, bx, cy_v, a_v, b_v, visc)
    # back muscles beside the spine, psoas beside the lumbar spine
    for sg in (-1, 1):
        P.ellipse(lm["femoral_head"] + 30 * s, v["C3"].z_centre, lambda z, sg=sg: g.sx(z) + sg * 35 * s,
                  lambda z: g.sy(z) + 55 * s, 27 * s, 24 * s, muscle + 3)
        psoas_r = Lin([(v["L1"].z_top, 6 * s), (v[f"L{p.n_lumbar}"].z_bottom, 24 * s), (lm["femoral_head"], 20 * s)])
        P.ellipse(lm["femoral_head"], v["L1"].z_top + 10, lambda z, sg=sg: g.sx(z) + sg * (28 * s + psoas_r(z)),
                  lambda z: g.sy(z) - 0.3 * psoas_r(z), psoas_r, psoas_r, muscle)
    # chest: lungs (with the apex and the diaphragm as ellipsoid caps), heart
    a_c = lambda z: g.a_m(z) - 12 * s
    b_c = lambda z: g.b_m(z) - 12 * s
    dome, apex = lm["dome"], lm["lung_apex"]
    for sg in (-1, 1):
        P.ellipse(dome - 45 * s, apex, lambda z, sg=sg: bx + sg * 0.47 * a_c(z), lambda z: g.cy(z) + 0.08 * b_c(z),
                  lambda z: 0.43 * a_c(z), lambda z: 0.78 * b_c(z), -850 + rng.normal(0, 20), taper_mm=45)
    _keep_draw = rng.uniform(180, 300) if p.contrast else None  # keeps rng's later values as they were
    heart_hu = _enhanced(p, {"none": 40 + st.tissue_hu, "arterial": (250, 420), "portal": (150, 220),
                             "excretory": (120, 170)}, crng)
    P.ellipse(dome - 20, dome + 100 * s, lambda z: bx + 0.15 * a_c(z), lambda z: g.cy(z) - 0.25 * b_c(z),
              lambda z: 0.38 * a_c(z), lambda z: 0.42 * b_c(z), heart_hu, taper_mm=45)
    # abdomen: liver, spleen, kidneys (cortex, medulla, pelvis), ureters, bowel, bladder
    liver = _enhanced(p, {"none": 58 + st.tissue_hu, "arterial": (65, 85), "portal": (100, 140),
                          "excretory": (85, 110)}, crng)
    P.ellipse(dome - 175 * s, dome + 5, lambda z: bx - 0.35 * a_v(z), lambda z: g.cy(z) - 0.05 * b_v(z),
              lambda z: 0.6 * a_v(z), lambda z: 0.8 * b_v(z), liver, taper_mm=60)
    spleen = _enhanced(p, {"none": 45 + st.tissue_hu, "arterial": (100, 150), "portal": (110, 140),
                           "excretory": (95, 120)}, crng)
    P.ellipse(dome - 110 * s, dome - 5, lambda z: bx + 0.62 * a_v(z), lambda z: g.cy(z) + 0.35 * b_v(z),
              lambda z: 0.22 * a_v(z), lambda z: 0.35 * b_v(z), spleen, taper_mm=40)
    l1 = v["L1"].z_centre
    cortex = _enhanced(p, {"none": 32 + st.tissue_hu, "arterial": (170, 260), "portal": (150, 200),
                           "excretory": (140, 180)}, crng)
    medulla = _enhanced(p, {"none": cortex, "arterial": (70, 100), "portal": cortex, "excretory": (150, 190)}, crng)
    urine = _enhanced(p, {"none": 10.0, "arterial": 10.0, "portal": 12.0, "excretory": (300, 1400)}, crng)
    zb = lm["femoral_head"] + 5 * s
    bl_y = lambda z: g.cy(z) - 0.45 * g.b_m(z)
    for sg, dz in ((-1, -15 * s), (1, 0.0)):
        zc = l1 + dz
        kx = lambda z, sg=sg: g.sx(z) + sg * 58 * s
        ky = lambda z: g.sy(z) + 8 * s
        P.ellipse(zc - 55 * s, zc + 55 * s, kx, ky, 24 * s, 30 * s, cortex, taper_mm=50 * s)
        P.ellipse(zc - 35 * s, zc + 35 * s, lambda z, sg=sg: g.sx(z) + sg * 55 * s, lambda z: g.sy(z) + 6 * s,
                  13 * s, 17 * s, medulla, taper_mm=30 * s)
        # renal pelvis at the hilum, the ureter along the psoas down to the bladder
        hx = lambda z, sg=sg: g.sx(z) + sg * 42 * s
        P.ellipse(zc - 12 * s, zc + 12 * s, hx, ky, 7 * s, 6 * s, urine, taper_mm=10 * s)
        if p.contrast_phase == "excretory":
            z_l = v[f"L{p.n_lumbar}"].z_centre
            P.tube([[float(hx(zc)), float(ky(zc)), zc - 10 * s],
                    [float(g.sx(z_l) + sg * 38 * s), float(g.sy(z_l) - 14 * s), z_l],
                    [bx + sg * 55 * s, float(g.sy(zb + 40 * s) - 10 * s), zb + 40 * s],
                    [bx + sg * 20 * s, float(bl_y(zb)), zb]], 2.0, urine)
    bowel = [-950, -950, -950, 15, -250]
    oral = float(crng.uniform(180, 650)) if p.oral_contrast else None
    for _ in range(int(rng.integers(8, 20))):
        zc = rng.uniform(lm["femoral_head"] + 20, l1)
        r = rng.uniform(8, 24) * s
        hu = float(rng.choice(bowel))
        # positive oral contrast fills the fluid-filled and half of the other loops
        if oral is not None and (hu == 15 or crng.random() < 0.5):
            hu = oral * crng.uniform(0.6, 1.0)
        ux, uy = rng.uniform(-0.75, 0.75), rng.uniform(-0.8, 0.1)
        P.ellipse(zc - r, zc + r, lambda z, ux=ux: bx + ux * a_v(z), lambda z, uy=uy: cy_v(z) + uy * b_v(z),
                  r, r * rng.uniform(0.7, 1.0), hu, taper_mm=r)
    _keep_draw = rng.choice([8, 12, 250]) if p.contrast else None
    bladder = urine if p.contrast_phase == "excretory" else 10
    P.ellipse(zb - 35 * s, zb + 35 * s, bx, bl_y, 45 * s, 35 * s, bladder, taper_mm=35 * s)
    # vessels: aorta (ascending, arch, descending to the bifurcation at L4), iliacs, IVC
    _keep_draw = rng.uniform(180, 350) if p.contrast else None
    ao_hu = _enhanced(p, {"none": 42 + st.tissue_hu, "arterial": (250, 480), "portal": (150, 230),
                          "excretory": (110, 160)}, crng)
    z_bif = v[f"L{min(4, p.n_lumbar)}"].z_centre
    z_arch = v["T4"].z_centre
    ax = lambda z: g.sx(z) + 16 * s
    ay = lambda z: g.sy(z) - v["L2"].b - 12 * s + 0 * z
    ao_y = lambda z: g.sy(z) - 0.9 * Lin([(x.z_centre, x.b) for x in p.vertebrae])(z) - 13 * s
    P.ellipse(z_bif, z_arch, ax, ao_y, 11 * s, 11 * s, ao_hu)
    P.tube([[bx - 8 * s, g.cy(z_arch) - 0.3 * b_c(z_arch), z_arch - 50 * s], [bx - 6 * s, g.cy(z_arch) - 0.35 * b_c(z_arch), z_arch + 5],
            [bx, g.cy(z_arch) - 0.1 * b_c(z_arch), z_arch + 25 * s], [float(ax(z_arch)), float(ay(z_arch)), z_arch]],
           13 * s, ao_hu)
    iliac = []
    for sg in (-1, 1):
        pts = [[float(ax(z_bif)), float(ay(z_bif)), z_bif],
               [bx + sg * 75 * s, g.cy(lm["femoral_head"]) + 10 * s, lm["femoral_head"] + 20 * s],
               [bx + sg * 85 * s, g.back_y - 2 * th_r(lm["femoral_head"]) + 25 * s, lm["femoral_head"] - 60 * s]]
        P.tube(pts, 6.5 * s, ao_hu)
        iliac.append(np.array(pts, dtype=float))
    _keep_draw = rng.uniform(100, 140) if p.contrast else None
    ivc = _enhanced(p, {"none": 40 + st.tissue_hu, "arterial": (60, 90), "portal": (110, 150),
                        "excretory": (110, 140)}, crng)
    P.ellipse(z_bif, dome, lambda z: g.sx(z) - 22 * s, lambda z: g.sy(z) - 30 * s, 11 * s, 9 * s, ivc)
    if p.calcification > 0:
        _calcified_plaques(P, p, crng, ax, ao_y, 11 * s, z_bif, v["T10"].z_centre if "T10" in v else dome, iliac, 6.5 * s)


def _calcified_plaques(P: Painter, p: CasePlan, rng, ax, ay, r_ao: float, z_lo: float, z_hi: float,
                       iliacs: list, r_il: float) -> None:
    """Calcified plaque (300-1100 HU) in the wall of the abdominal aorta and the iliac arteries:
    small bright nodules and short arcs, more and denser with ``plan.calcification`` (age)."""
    n = int(4 + 60 * p.calcification)
    for _ in range(n):
        hu = rng.uniform(300, 600 + 500 * p.calcification)
        r = rng.uniform(1.0, 2.5)
        th = rng.uniform(0, 2 * np.pi)
        if rng.random() < 0.65:    # aortic wall, mostly its posterior and lateral sides
            z = rng.uniform(z_lo, z_hi)
            th = rng.normal(np.pi / 2, 1.0)
            c = np.array([ax(z) + r_ao * np.cos(th), ay(z) + r_ao * np.sin(th), z])
        else:
            pts = iliacs[int(rng.integers(len(iliacs)))]
            t = rng.uniform(0, 1)
            seg = min(int(t * (len(pts) - 1)), len(pts) - 2)
            u = t * (len(pts) - 1) - seg
            c = pts[seg] * (1 - u) + pts[seg + 1] * u
            c = c + np.array([r_il * np.cos(th), r_il * np.sin(th), 0.0])
        d = rng.normal(0, 1, 3)
        d *= rng.uniform(0.5, 4.0) / np.linalg.norm(d)
        P.tube([list(c - d), list(c + d)], r, hu)


def forearm_axes(p: CasePlan, g: _Geo) -> list[tuple[np.ndarray, np.ndarray]]:
    """(elbow, wrist) of each forearm resting on the abdomen (``p.forearms == "belly"``; points
    x, y, z in mm). The elbow lies beside the trunk on the table, 300 mm (the humerus) below the
    shoulder; the forearm, 230-270 mm long (the radius), runs forwards, inwards and down to the
    wrist on the belly's skin: as far in front as it reaches (10-90 mm from the midline on a lean
    belly: inside the frontal band of the network's input; on the belly's side when obese)."""
    if p.arms != "down" or p.forearms != "belly":
        return []
    s, f = g.s, g.fat
    rng = np.random.default_rng([p.seed, p.index, 9])
    z_elb = p.vertebra("T1").z_top - 5 * s - 300 * s
    r_arm = 35 * s + 0.4 * f
    phis = np.radians(np.linspace(0.0, 90.0, 31))   # from the front round to the side
    out = []
    for sg in (-1, 1):
        elbow = np.array([p.body_x_mm + sg * (float(g.a_out(z_elb)) + r_arm + 4), g.back_y - r_arm - 35 * s, z_elb])
        length = float(rng.uniform(230, 270)) * s
        inner = float(rng.uniform(10, 90)) * s
        zw = z_elb - 0.6 * length
        for _ in range(3):   # the skin's outline at the wrist's height (it changes little)
            a, b, cy = float(g.a_out(zw)), float(g.b_out(zw)), float(g.cy(zw))
            wx = p.body_x_mm + sg * np.maximum(a * np.sin(phis), inner)
            wy = cy - b * np.cos(phis) - 12 * s
            flat = np.hypot(wx - elbow[0], wy - elbow[1])
            k = int(np.argmax(flat < 0.95 * length)) if (flat < 0.95 * length).any() else len(phis) - 1
            zw = z_elb - np.sqrt(max(length ** 2 - flat[k] ** 2, (0.3 * length) ** 2))
        d = np.array([wx[k], wy[k], zw]) - elbow
        out.append((elbow, elbow + length * d / np.linalg.norm(d)))
    return out


def _arms(P: Painter, p: CasePlan, g: _Geo, bone: bool) -> None:
    s, f = g.s, g.fat
    v = {x.name: x for x in p.vertebrae}
    z_sh = v["T1"].z_top - 5 * s
    r_arm = Lin([(z_sh, 45 * s + 0.5 * f), (z_sh - 300 * s, 35 * s + 0.4 * f), (z_sh - 560 * s, 25 * s)])
    belly = forearm_axes(p, g)
    for elbow, wrist in belly:   # forearms on the abdomen: soft tissue, then the radius and ulna
        if not bone:
            P.tube([list(elbow), list(wrist)], 26 * s + 0.3 * f, -100)
            P.tube([list(elbow), list(wrist)], 24 * s, 45 + STYLES[p.style].tissue_hu)
            continue
        side = np.cross(wrist - elbow, [0.0, 0.0, 1.0])
        side *= 8 * s / max(np.linalg.norm(side), 1e-6)
        for d in (-1, 1):
            P.tube([list(elbow + d * side), list(wrist + 0.6 * d * side)], (6.0 if d < 0 else 5.0) * s, 900,
                   core_hu=150, cortex_mm=2.0)
    for sg in (-1, 1):
        if p.arms == "down":
            z_lo, z_hi = z_sh - (320 if belly else 600) * s, z_sh + 15 * s   # (belly: the upper arm only)
            cx = lambda z, sg=sg: p.body_x_mm + sg * (g.a_out(np.maximum(z, z_sh - 420 * s)) + r_arm(z) + 4)
            cy = lambda z: g.back_y - r_arm(z) - 35 * s
        else:  # raised beside the head
            z_lo, z_hi = z_sh - 30 * s, z_sh + 550 * s
            cx = lambda z, sg=sg: p.body_x_mm + sg * Lin([(z_sh, 150 * s + 0.6 * f), (z_sh + 250 * s, 120 * s + 0.5 * f)])(z)
            cy = lambda z: g.back_y - 130 * s - 0 * z
        if not bone:
            ra = lambda z: r_arm(np.abs(z - z_sh) * -1 + z_sh)
            P.ellipse(z_lo, z_hi, cx, cy, ra, ra, -100, taper_mm=20)
            rm = lambda z: ra(z) - 0.5 * f
            P.ellipse(z_lo, z_hi, cx, cy, rm, rm, 45 + STYLES[p.style].tissue_hu, taper_mm=20)
            continue
        if p.arms == "down":
            z_elb = z_sh - 300 * s
            P.ellipse(z_elb, z_sh, cx, cy, 11 * s, 11 * s, 1000)
            P.ellipse(z_elb, z_sh, cx, cy, 6 * s, 6 * s, 100)
            for d in (-9, 9) if not belly else ():
                P.ellipse(z_sh - 540 * s, z_elb, lambda z, d=d: cx(z) + d * s, cy, 6 * s, 6 * s, 800)
        else:
            P.ellipse(z_sh + 20 * s, z_sh + 300 * s, cx, cy, 11 * s, 11 * s, 1000)
            P.ellipse(z_sh + 20 * s, z_sh + 300 * s, cx, cy, 6 * s, 6 * s, 100)
        # humeral head
        hx = p.body_x_mm + sg * (g.a_out(z_sh) - 35 * s)
        P.ellipse(z_sh - 25 * s, z_sh + 20 * s, hx, g.back_y - 90 * s, 22 * s, 22 * s, 600, taper_mm=22 * s)
        P.ellipse(z_sh - 22 * s, z_sh + 17 * s, hx, g.back_y - 90 * s, 20 * s, 20 * s, 250, taper_mm=19 * s)


def _rot(dx: float, dy: float, th: float) -> tuple[float, float]:
    """(dx, dy) rotated by ``th`` radians in the axial plane (x towards y)."""
    return dx * np.cos(th) - dy * np.sin(th), dx * np.sin(th) + dy * np.cos(th)


#: Transverse process length relative to L3's, by lumbar level (the last lumbar one: 0.65).
_TP_FACTOR = {1: 0.55, 2: 0.8, 3: 1.0, 4: 0.85, 5: 0.75, 6: 0.7}


def _plate(v, g: _Geo, which: str) -> tuple[float, float]:
    """(slope dz/dy, pivot y) of a vertebra's "top" or "bottom" endplate: the plate passes
    through the column's axis at its z and leans by its tilt (0 slope when within 0.2 degrees
    of level: painted level, cheaper)."""
    deg, z = (v.tilt_top, v.z_top) if which == "top" else (v.tilt_bottom, v.z_bottom)
    return (float(np.tan(np.radians(deg))) if abs(deg) >= 0.2 else 0.0, float(g.sy(z)))


def _plates(v, g: _Geo):
    """``Painter.ellipse``'s ``tilt`` for a body between its endplates (None when both are level)."""
    lo, hi = _plate(v, g, "bottom"), _plate(v, g, "top")
    return (lo, hi) if (lo[0] or hi[0]) else None


def _spurs(P: Painter, up, lo, g: _Geo, a: float, b: float, cortex: float, tex) -> None:
    """Osteophytes at the disc between ``up`` and ``lo``: a bright lip (0.8 of cortical bone) of
    ``spur_*`` mm around the anterior and lateral rim of each plate, leaning with the plate, its
    outer half bent into the disc (a claw) by 0.7 of its length (at most 45 % of the disc); a
    bridge (DISH-like,
    0.7 of cortical bone) over the disc's whole height in front when ``up.bridge_below``."""
    arc = (150.0, 30.0)            # from the right's back, through the front, to the left's back
    for v, side, sign in ((up, "bottom", -1.0), (lo, "top", 1.0)):
        ln = v.spur_bottom if side == "bottom" else v.spur_top
        if ln <= 0:
            continue
        z0 = v.z_bottom if side == "bottom" else v.z_top
        k, y0 = _plate(v, g, side)
        reach = min(0.7 * ln, 0.45 * (up.z_bottom - lo.z_top))
        tilt = ((k, y0), (k, y0)) if k else None
        # a claw: out from the rim at the plate, then its outer half bends towards the disc
        base = z0 + sign * 0.4 * reach
        z_lo, z_hi = sorted((z0 - sign * 1.5, base))
        P.ellipse(z_lo, z_hi, g.sx, g.sy, a + ln, b + ln, 0.8 * cortex, inner=min(a, b) / (min(a, b) + ln) - 0.05,
                  arc_deg=arc, tilt=tilt, texture=tex(_SHELL_AMP))
        z_lo, z_hi = sorted((base, z0 + sign * reach))
        P.ellipse(z_lo, z_hi, g.sx, g.sy, a + ln, b + ln, 0.8 * cortex,
                  inner=(min(a, b) + 0.5 * ln) / (min(a, b) + ln), arc_deg=arc, tilt=tilt, texture=tex(_SHELL_AMP))
    if up.bridge_below:
        ln = 0.5 * (up.spur_bottom + lo.spur_top)
        kl, yl = _plate(lo, g, "top")
        ku, yu = _plate(up, g, "bottom")
        P.ellipse(lo.z_top - 1.0, up.z_bottom + 1.0, g.sx, g.sy, a + ln, b + ln, 0.7 * cortex,
                  inner=min(a, b) / (min(a, b) + ln) - 0.05, arc_deg=(210.0, 330.0),
                  tilt=((kl, yl), (ku, yu)) if (kl or ku) else None, texture=tex(_SHELL_AMP))


def _spine(P: Painter, p: CasePlan, g: _Geo, cortex: float, spongy: float, rng, tex) -> None:
    s, bone = g.s, p.bone
    verts = [x for x in p.vertebrae if x.name != "S"]
    chain = verts + [p.vertebra("S")]
    for i, x in enumerate(verts):
        ylo, yhi = x.z_bottom, x.z_top
        h, zc = yhi - ylo, x.z_centre
        region = x.name[0]
        tl = _plates(x, g)
        # posterior elements turn with the body: dy mm behind its axis they lie lift * dy higher
        lift = np.tan(np.radians(0.5 * (x.tilt_top + x.tilt_bottom)))
        sp = spongy * x.density
        # body: waisted (narrower at mid-height), endplates (1.2 mm, about 75 % of solid cortical
        # bone at CT resolution), a thinner wall between them (a ray crossing it sees one voxel
        # of partial volume), cancellous core
        waist = {"C": 0.04, "T": 0.06, "L": 0.09}[region]
        wf = lambda z, zc=zc, h=h, w=waist: 1.0 - w * np.clip(1.0 - ((z - zc) / (0.5 * h)) ** 2, 0, 1)
        wa = lambda z, x=x, wf=wf: x.a * wf(z)
        wb = lambda z, x=x, wf=wf: x.b * wf(z)
        P.ellipse(ylo, yhi, g.sx, g.sy, wa, wb, 0.75 * cortex, texture=tex(_SHELL_AMP), tilt=tl)
        P.ellipse(ylo + 1.2, yhi - 1.2, g.sx, g.sy, wa, wb, _THIN_SHELL * cortex, texture=tex(_SHELL_AMP), tilt=tl)
        P.ellipse(ylo + 1.2, yhi - 1.2, g.sx, g.sy, lambda z, wa=wa: wa(z) - 1.3, lambda z, wb=wb: wb(z) - 1.3,
                  sp, texture=tex(_SPONGY_AMP), tilt=tl)
        # posterior elements at the vertebra's centre level, turned with its axial rotation
        # (scoliosis: the body turns towards the convexity, the spinous process to the concavity)
        sx0, sy0 = float(g.sx(zc)), float(g.sy(zc))
        th = np.radians(np.clip(bone["rot_per_mm"] * x.x, -25, 25))
        rc = {"C": 8.0, "T": 7.5, "L": 9.0}[region] * s          # canal radius
        k = int(x.name[1:])
        f = (k - 1) / max(p.n_lumbar - 1, 1) if region == "L" else (k - 1) / max(p.n_rib_pairs - 1, 1)
        pw = {"C": 2.5, "T": 2.5 + 1.5 * f, "L": 3.5 + 3.5 * f}[region] * s    # pedicle half-width
        ph = {"C": 3.5, "T": 5.0 + 1.5 * f, "L": 7.5}[region] * s              # pedicle half-height
        disc_above = chain[i - 1].z_bottom - x.z_top if i else 4.0
        disc_below = x.z_bottom - chain[i + 1].z_top
        ring = x.b + rc + 1.5                                     # canal centre behind the body centre
        cx, cy = _rot(0.0, ring, th)
        cx, cy = sx0 + cx, sy0 + cy
        # laminae: the posterior half ring around the canal. The arch hangs lower than its body:
        # it leaves the body at the pedicles (upper half) and its laminae run down past the disc
        # below, to the inferior facets beside the next body's top; in a midline (sagittal) MIP
        # the posterior column has no gap at the disc levels, its gaps (the interlaminar
        # windows) lie level with the bodies' upper thirds
        h_below = chain[i + 1].z_top - chain[i + 1].z_bottom
        zl = lift * ring                                          # the arch's rise
        P.ellipse(ylo - disc_below - 0.1 * h_below + zl, yhi - 0.35 * h + zl, cx, cy, rc + 5 * s, rc + 4.5 * s,
                  0.5 * cortex, inner=0.72,
                  arc_deg=(10.0, 170.0), texture=tex(_SHELL_AMP))
        for sg in (-1, 1):
            # pedicle: an open rod from the back of the body to the canal's side: end-on in a
            # frontal view it is a bright ring around cancellous bone
            px, py = _rot(sg * (rc + pw - 1.0), x.b + 0.5 * rc, th)
            P.rod("y", ylo + 0.62 * h + lift * py, sx0 + px, sy0 + py - 0.5 * rc - 4.0, sy0 + py + 0.5 * rc + 3.0,
                  min(ph, 0.3 * h), pw, cortex, sp, cortex_mm=1.5)
            # articular processes: a column beside the canal, from facet joint to facet joint
            # (superior process from the upper endplate up, inferior one from the lower half of
            # the arch down, the joint between them at the disc's level)
            ax, ay = _rot(sg * (rc + 2.0 * s), ring + 1.0 * s, th)
            P.ellipse(yhi - 0.1 * h + zl, yhi + 0.35 * disc_above + zl, sx0 + ax, sy0 + ay, 4.0 * s, 5.0 * s,
                      0.5 * cortex, taper_mm=2.0, texture=tex(_SHELL_AMP))
            P.ellipse(ylo - 0.35 * disc_below + zl, ylo + 0.35 * h + zl, sx0 + ax, sy0 + ay + 2.0 * s, 3.5 * s,
                      4.5 * s, 0.5 * cortex, taper_mm=2.0, texture=tex(_SHELL_AMP))
            # transverse processes: lumbar ones straight out, longest at L3; thoracic ones back
            # and out to the rib's tubercle
            tz = ylo + 0.55 * h + lift * (x.b + 0.6 * rc)
            if region == "L":
                lt = bone["tp_l3"] * (_TP_FACTOR[k] if k < p.n_lumbar else 0.65) * float(rng.normal(1, 0.04))
                x0 = rc + pw
                tx, ty = _rot(sg * (x0 + 0.5 * lt), x.b + 0.6 * rc, th)
                lo, hi = sorted((sx0 + tx - 0.5 * lt, sx0 + tx + 0.5 * lt))
                P.rod("x", tz, sy0 + ty, lo, hi, 4.5 * s, 3.0 * s, 0.7 * cortex, spongy)
            else:
                lt = (15.0 if region == "T" else 8.0) * s
                b0 = _rot(sg * (rc + pw), ring - 2.0, th)
                b1 = _rot(sg * (rc + pw + lt), ring + 0.5 * lt, th)
                P.tube([[sx0 + b0[0], sy0 + b0[1], tz], [sx0 + b1[0], sy0 + b1[1], tz + 2.0]], 3.5 * s,
                       0.7 * cortex, spongy)
        # spinous process: lumbar ones broad and horizontal, thoracic ones long and sloping down
        if region == "T":
            ls = (28.0 + 12.0 * np.sin(np.pi * f)) * s
            ang = np.radians(bone["spinous_t_deg"] * (0.6 + 0.4 * np.sin(np.pi * f)))
            q0 = _rot(0.0, ring + rc + 2.0, th)
            q1 = _rot(0.0, ring + rc + 2.0 + ls * np.cos(ang), th)
            P.tube([[sx0 + q0[0], sy0 + q0[1], zc - 0.1 * h], [sx0 + q1[0], sy0 + q1[1], zc - 0.1 * h - ls * np.sin(ang)]],
                   3.2 * s, 0.7 * cortex, spongy)
        else:
            ls = bone["spinous_l"] if region == "L" else 18.0 * s
            qx, qy = _rot(0.0, ring + rc + 3.0 + 0.5 * ls, th)
            # (from the arch's lower part: level with the lower body and the disc below)
            sp_lo, sp_hi = ylo - 0.8 * disc_below, ylo + (0.55 if region == "L" else 0.45) * h
            sp_lo, sp_hi = sp_lo + lift * qy, sp_hi + lift * qy
            P.ellipse(sp_lo, sp_hi, sx0 + qx, sy0 + qy, 3.0 * s, 0.5 * ls, 0.6 * cortex, texture=tex(_SHELL_AMP))
            P.ellipse(sp_lo + 1.5, sp_hi - 1.5, sx0 + qx, sy0 + qy, 1.8 * s, 0.5 * ls - 1.5,
                      spongy, texture=tex(_SPONGY_AMP))
    # discs between consecutive bodies (and L-last / S1), with the hollow of each endplate: a
    # lens of disc inside a lens of cortical bone reaching ``cup`` mm into the body
    for up, lo in zip(chain[:-1], chain[1:]):
        a, b = 0.5 * (up.a + lo.a), 0.5 * (up.b + lo.b)
        below, above = _plate(lo, g, "top"), _plate(up, g, "bottom")
        for z_plate, cup, pl in ((up.z_bottom, up.cup, above), (lo.z_top, lo.cup, below)):
            if cup > 0:
                tt = (pl, pl) if pl[0] else None
                P.ellipse(z_plate - cup - 1.0, z_plate + cup + 1.0, g.sx, g.sy, 0.85 * a, 0.85 * b, 0.75 * cortex,
                          taper_mm=cup + 1.0, tilt=tt)
                P.ellipse(z_plate - cup, z_plate + cup, g.sx, g.sy, 0.85 * a - 1.2, 0.85 * b - 1.2, 80, taper_mm=cup,
                          tilt=tt)
        P.ellipse(lo.z_top, up.z_bottom, g.sx, g.sy, a, b, 80 + rng.normal(0, 8),
                  tilt=(below, above) if (below[0] or above[0]) else None)
        _spurs(P, up, lo, g, a, b, cortex, tex)
    # spinal canal (CSF) through the discs as well
    top, bottom = verts[0].z_top, p.vertebra("S").z_top
    canal_y = lambda z: g.sy(z) + Lin([(x.z_centre, x.b) for x in verts])(z) + 9 * s + 1.5
    P.ellipse(bottom, top, g.sx, canal_y, 8 * s, 7 * s, 15)


def _chest_wall(P: Painter, p: CasePlan, g: _Geo, cortex: float, spongy: float, tex) -> None:
    s = g.s
    v = {x.name: x for x in p.vertebrae}
    bx = p.body_x_mm
    a_c = lambda z: g.a_m(z) - 10 * s
    b_c = lambda z: g.b_m(z) - 10 * s
    # costal cartilage calcifies with age (a few per cent of cortical bone's density at most)
    cart_hu = 110 + 380 * p.bone["cartilage_calc"]
    n = p.n_rib_pairs
    for k in range(1, n + 1):
        vt = v[f"T{k}"]
        z0 = vt.z_centre
        th_end = p.rib_ends_deg[k - 1]
        # a rib runs from its head on the body back and out to the transverse process, then
        # out, forwards and down: its front end lies 2-4 vertebrae below its head, lower ribs
        # descending more
        drop = (55 + 60 * k / n) * s
        th = np.linspace(22.0, th_end, max(int(th_end / 6), 4))
        frac = (th - 22.0) / (180.0 - 22.0)
        zr = z0 + 4 * s - drop * frac ** 1.5
        r = p.bone["rib_r"] * (1.15 if k == 1 else 1.0)
        sx0, sy0 = float(g.sx(z0)), float(g.sy(z0))
        for sg in (-1, 1):
            head = [sx0 + sg * (vt.a + 3), sy0 + 0.4 * vt.b, z0]
            tubercle = [sx0 + sg * (vt.a + 14 * s), sy0 + vt.b + 16 * s, z0 + 3 * s]
            arc = [[float(bx + sg * a_c(z) * np.sin(np.radians(t))), float(g.cy(z) + b_c(z) * np.cos(np.radians(t))), float(z)]
                   for t, z in zip(th, zr)]
            # a thin cortex (0.5-1 mm: a voxel sees about half of solid bone) around marrow; in
            # front of the side the rib is thinner and flatter (a frontal view sees its front
            # part dimmer). Measured on the network's input (benchmarks/phantom_vs_real.py), the
            # lowest ribs of real scans read 0.4-0.9 of the lumbar spine's brightest pixels;
            # at 2/3 of solid bone the phantoms' read 0.7-1.3
            n_back = int(np.searchsorted(th, 110.0)) + 1
            P.tube([head, tubercle] + arc[:n_back], r, 0.5 * cortex, 0.85 * spongy, cortex_mm=1.2, texture=tex(_RIB_AMP))
            if n_back < len(arc):
                P.tube(arc[n_back - 1:], 0.85 * r, 0.35 * cortex, 0.7 * spongy, cortex_mm=1.0, texture=tex(_RIB_AMP))
            if k <= min(10, n - 2):   # costal cartilage to the sternum (1-7) or the costal margin
                t_end = 176.0 if k <= 7 else 165.0
                tc = np.linspace(th_end, t_end, 6)
                zc = z0 + 4 * s - drop * ((tc - 22.0) / 158.0) ** 1.5 + (tc - th_end) * 0.25 * s * (k > 5)
                cpts = [[float(bx + sg * a_c(z) * np.sin(np.radians(t))), float(g.cy(z) + b_c(z) * np.cos(np.radians(t))), float(z)]
                        for t, z in zip(tc, zc)]
                P.tube(cpts, 4.0 * s, cart_hu)
    # sternum: manubrium and body
    z_hi, z_lo = v["T2"].z_top, v[f"T{min(9, n)}"].z_centre
    st_y = lambda z: g.cy(z) - g.b_m(z) + 9 * s
    st_a = Lin([(z_hi, 24 * s), (z_hi - 45 * s, 14 * s), (z_lo, 12 * s)])
    P.ellipse(z_lo, z_hi, bx, st_y, st_a, 6.5 * s, _THIN_SHELL * cortex, texture=tex(_SHELL_AMP))
    P.ellipse(z_lo + 1, z_hi - 1, bx, st_y, lambda z: st_a(z) - 1.5, 4.5 * s, spongy, texture=tex(_SPONGY_AMP))
    # clavicles and scapulae
    zt = v["T1"].z_top
    for sg in (-1, 1):
        P.tube([[bx + sg * 20 * s, float(st_y(z_hi)), z_hi + 5], [bx + sg * 75 * s, float(g.cy(zt) - 0.5 * g.b_m(zt)), zt + 8],
                [bx + sg * (float(g.a_out(zt)) - 35 * s), float(g.cy(zt)), zt + 12]], 6 * s, cortex, spongy)
        _scapula(P, p, g, sg, lambda z: a_c(z) + 24 * s, lambda z: b_c(z) + 24 * s, cortex, spongy, tex)


def _scapula(P: Painter, p: CasePlan, g: _Geo, sg: int, sa, sb, cortex: float, spongy: float, tex) -> None:
    """A scapula on the back of the chest wall (``sa``, ``sb``: the ellipse it lies on): a thin
    triangular blade (little more than two cortical tables: dim in a projection) between its
    medial border (75 degrees from the side, down to the inferior angle at T7-T8) and its lateral
    border (20 degrees, rising to the glenoid at T2-T3), framed by thick borders, with the spine
    of the scapula across its upper third up to the acromion."""
    s, v, bx = g.s, {x.name: x for x in p.vertebrae}, p.body_x_mm
    top = v["T1"].z_top - 5 * s
    inf_angle = v[f"T{min(8, p.n_rib_pairs)}"].z_centre
    glenoid = v["T3"].z_centre
    med, lat = 75.0, 20.0

    def at(phi, z):   # a point of the blade: phi in the left side's frame, mirrored for the right
        ph = np.radians(phi if sg > 0 else 180.0 - phi)
        return [float(bx + sa(z) * np.cos(ph)), float(g.cy(z) + sb(z) * np.sin(ph)), float(z)]

    edges = np.linspace(lat, med, 7)
    for lo_deg, hi_deg in zip(edges[:-1], edges[1:]):
        u = (0.5 * (lo_deg + hi_deg) - lat) / (med - lat)     # 0 lateral .. 1 medial
        z_lo = glenoid + u * (inf_angle - glenoid)
        arc = (lo_deg, hi_deg) if sg > 0 else (180.0 - hi_deg, 180.0 - lo_deg)
        P.ellipse(z_lo, top - 4 * s * u, bx, g.cy, sa, sb, _THIN_SHELL * 0.8 * cortex, inner=0.965, arc_deg=arc,
                  texture=tex(_SHELL_AMP))
    # lateral border (thick), medial border, spine to the acromion
    P.tube([at(med - 3, inf_angle + 3), at(lat + 10, 0.5 * (inf_angle + glenoid)), at(lat, glenoid)],
           4.0 * s, 0.8 * cortex, spongy, texture=tex(_SHELL_AMP))
    P.tube([at(med, inf_angle + 3), at(med, top - 4 * s)], 2.5 * s, 0.6 * cortex, texture=tex(_SHELL_AMP))
    z_sp = top - 0.3 * (top - inf_angle)
    sp0 = at(med, z_sp)
    sp1 = at(lat + 5, top + 5 * s)
    sp1[1] += 8 * s
    P.tube([sp0, sp1], 3.5 * s, 0.75 * cortex, spongy, texture=tex(_SHELL_AMP))


def _pelvis_legs(P: Painter, p: CasePlan, g: _Geo, cortex: float, spongy: float, tex) -> None:
    s, lm = g.s, p.landmarks
    sac = p.vertebra("S")
    bx = p.body_x_mm
    zf = lm["femoral_head"]
    y_s1 = float(g.sy(sac.z_top))
    depth = sac.z_top - sac.z_bottom
    # the sacrum leaves L5 backwards at the sacral slope and curves down to the vertical at
    # its tip (its axis runs square to the S1 endplate)
    slope = np.tan(np.radians(p.bone["sacral_slope_deg"]))
    sy = lambda z: y_s1 + depth * slope * (lambda t: t - 0.5 * t * t)(np.clip(-z / depth, 0, 1))
    sa = Lin([(0.0, 50 * s), (-0.35 * depth, 42 * s), (sac.z_bottom, 10 * s)])
    # (its axial sections are sheared, not turned: a body leaning by a is 1 / cos(a) deeper in an
    # axial slice, so the S1 plate keeps its full length at the sacral slope)
    sb0 = Lin([(0.0, sac.b), (sac.z_bottom, 7 * s)])
    sb = lambda z: sb0(z) * np.sqrt(1.0 + (slope * (1.0 - np.clip(-z / depth, 0, 1))) ** 2)  # noqa: E731
    # its upper plate leans at the sacral slope (the L5/S1 disc above is wedged to match)
    top = ((0.0, 0.0), _plate(sac, g, "top"))
    P.ellipse(sac.z_bottom, sac.z_top, bx, sy, sa, sb, _THIN_SHELL * cortex, texture=tex(_SHELL_AMP), tilt=top)
    P.ellipse(sac.z_top - 1.2, sac.z_top, bx, sy, sa, sb, 0.75 * cortex, texture=tex(_SHELL_AMP), tilt=top)
    P.ellipse(sac.z_bottom + 2, sac.z_top - 1.2, bx, sy, lambda z: sa(z) - 2, lambda z: sb(z) - 2, spongy,
              texture=tex(_SPONGY_AMP), tilt=top)
    # the fused S1-S5 bodies: their former endplates stay as dense transverse ridges
    for frac in (0.22, 0.42, 0.6, 0.76):
        zr = sac.z_top + frac * (sac.z_bottom - sac.z_top)
        P.ellipse(zr - 0.8, zr + 0.8, bx, sy, 0.45 * float(sa(zr)), float(sb(zr)) - 2, 0.75 * cortex,
                  texture=tex(_SHELL_AMP))
    P.tube([[bx, float(sy(sac.z_bottom)), sac.z_bottom], [bx, float(sy(sac.z_bottom)) - 10 * s, sac.z_bottom - 30 * s]],
           5 * s, 0.7 * cortex)
    x_fh, y_fh, r_fh = 88 * s, y_s1 - 50 * s, 24 * s
    z_ac = zf + 30 * s
    # sacral foramina: four pairs of canals through the sacrum, front to back
    for frac in (0.12, 0.32, 0.51, 0.68):
        zr = sac.z_top + frac * (sac.z_bottom - sac.z_top)
        for sg in (-1, 1):
            P.rod("y", zr, bx + sg * (0.3 * float(sa(zr)) + 4 * s), float(sy(zr)) - 40, float(sy(zr)) + 40,
                  (3.5 - 2.0 * frac) * s, (3.5 - 2.0 * frac) * s, 60)
    crest = lm["iliac_crest"]
    wing = p.bone["wing_mm"]
    for sg in (-1, 1):
        # iliac wing: a thin curved plate (two cortical tables, little marrow) from the
        # sacroiliac joint round to the anterior superior spine; its crest is highest at the
        # side and falls 25-35 mm to the front and 15-25 mm to the back
        wa = Lin([(crest, wing), (z_ac, 42 * s)])
        wb = Lin([(crest, 0.8 * wing), (z_ac, 38 * s)])
        cxw, cyw = bx + sg * 42 * s, y_s1 - 18 * s

        def crest_z(phi):   # phi: 0 = lateral, -60 = front, 105 = back (the wing's own frame)
            d = (phi - 15.0) / 75.0
            return crest - (30 * s * d * d if phi < 15 else 20 * s * d * d * (75.0 / 90.0) ** 2)

        edges = np.linspace(-60.0, 105.0, 9)
        for lo_deg, hi_deg in zip(edges[:-1], edges[1:]):
            z_hi = float(crest_z(0.5 * (lo_deg + hi_deg)))
            arc = (lo_deg, hi_deg) if sg > 0 else (180.0 - hi_deg, 180.0 - lo_deg)
            P.ellipse(z_ac - 10 * s, z_hi, cxw, cyw, wa, wb, _THIN_SHELL * cortex, inner=0.9, arc_deg=arc,
                      texture=tex(_SHELL_AMP))
            P.ellipse(z_ac - 10 * s, z_hi - 2, cxw, cyw, lambda z: wa(z) - 2, lambda z: wb(z) - 2,
                      0.8 * spongy, inner=0.94, arc_deg=arc, texture=tex(_SPONGY_AMP))
        # the crest: a thick rim of bone along the wing's top edge (its cortex at 0.6 of solid
        # bone: at 0.75 the wings beside L5 read 0.9-1.2 of the lumbar spine on the network's
        # input, real scans 0.75-0.9; benchmarks/phantom_vs_real.py)
        phis = np.linspace(-60.0, 105.0, 12)
        rim = [[float(cxw + sg * 0.95 * wa(crest) * np.cos(np.radians(f))),
                float(cyw + 0.95 * wb(crest) * np.sin(np.radians(f))), float(crest_z(f)) - 3.0] for f in phis]
        P.tube(rim, 4.0 * s, 0.6 * cortex, spongy, texture=tex(_SHELL_AMP))
        # acetabulum, femoral head, neck, trochanter, shaft
        fx = bx + sg * x_fh
        # (round bones have a thin cortex around cancellous bone: painted as thin shells, so a
        # projection shows a brighter rim around a dimmer middle, not a flat disc)
        r_ac = r_fh + 8 * s
        P.ellipse(zf - 0.6 * r_ac, zf + r_ac, fx - sg * 5 * s, y_fh, r_ac, r_ac, 0.75 * cortex, taper_mm=r_ac,
                  texture=tex(_SHELL_AMP))
        P.ellipse(zf - 0.6 * r_ac + 1.5, zf + r_ac - 1.5, fx - sg * 5 * s, y_fh, r_ac - 1.5, r_ac - 1.5, spongy,
                  taper_mm=r_ac - 1.5, texture=tex(_SPONGY_AMP))
        P.ellipse(zf - r_fh - 2, zf + r_fh + 2, fx, y_fh, r_fh + 2, r_fh + 2, 60, taper_mm=r_fh + 2)
        P.ellipse(zf - r_fh, zf + r_fh, fx, y_fh, r_fh, r_fh, 0.75 * cortex, taper_mm=r_fh, texture=tex(_SHELL_AMP))
        P.ellipse(zf - r_fh + 1.5, zf + r_fh - 1.5, fx, y_fh, r_fh - 1.5, r_fh - 1.5, spongy, taper_mm=r_fh - 1.5,
                  texture=tex(_SPONGY_AMP))
        tx, tz = fx + sg * 42 * s, zf - 35 * s
        P.tube([[fx, y_fh, zf], [tx, y_fh + 8 * s, tz]], 14 * s, 0.75 * cortex, spongy, cortex_mm=1.5,
               texture=tex(_SHELL_AMP))
        P.ellipse(tz - 20 * s, tz + 22 * s, tx, y_fh + 12 * s, 18 * s, 20 * s, _THIN_SHELL * cortex, taper_mm=15 * s,
                  texture=tex(_SHELL_AMP))
        P.ellipse(tz - 18 * s, tz + 20 * s, tx, y_fh + 12 * s, 16.5 * s, 18.5 * s, spongy, taper_mm=14 * s,
                  texture=tex(_SPONGY_AMP))
        shaft_x = Lin([(tz, tx - sg * 4 * s), (lm["thigh_end"], fx + sg * 8 * s)])
        P.ellipse(lm["thigh_end"] - 100, tz, shaft_x, y_fh + 15 * s, 14 * s, 14 * s, 1.25 * cortex)
        P.ellipse(lm["thigh_end"] - 100, tz - 40 * s, shaft_x, y_fh + 15 * s, 7.5 * s, 7.5 * s, -20)
        # ischium and pubis
        P.ellipse(zf - 60 * s, zf + 5 * s, fx - sg * 30 * s, y_fh + 32 * s, 12 * s, 17 * s, 0.8 * cortex)
        P.ellipse(zf - 56 * s, zf, fx - sg * 30 * s, y_fh + 32 * s, 8 * s, 12 * s, spongy, texture=tex(_SPONGY_AMP))
        P.tube([[fx - sg * 22 * s, y_fh - 14 * s, zf + 6 * s], [bx + sg * 10 * s, y_fh - 52 * s, zf - 22 * s],
                [bx + sg * 10 * s, y_fh - 48 * s, zf - 48 * s], [fx - sg * 30 * s, y_fh + 26 * s, zf - 58 * s]],
               8 * s, cortex, spongy, texture=tex(_SHELL_AMP))


def _head(P: Painter, p: CasePlan, g: _Geo, cortex: float) -> None:
    s, lm = g.s, p.landmarks
    ztop, zbot = lm["vertex"], lm["c1_top"] - 5 * s
    h = 0.5 * (ztop - zbot)
    cy = lambda z: g.back_y - 95 * s - 8 + 0 * z
    P.ellipse(zbot + 25 * s, ztop, p.body_x_mm, cy, 70 * s, 88 * s, 1.1 * cortex, taper_mm=h)
    P.ellipse(zbot + 30 * s, ztop - 7, p.body_x_mm, cy, 63 * s, 81 * s, 35, taper_mm=h - 7)
    # mandible: an arch in front of the upper cervical spine
    P.ellipse(zbot - 10 * s, zbot + 20 * s, p.body_x_mm, lambda z: cy(z) - 20 * s, 50 * s, 70 * s, cortex,
              inner=0.88, arc_deg=(200.0, 340.0))


#: Medial angulation of pedicle screws (degrees from the sagittal plane), by level: the pedicles
#: converge more caudally (thoracic 5-10, L1 ~10 to L5 ~25-30, S1 ~25-30).
_SCREW_CONVERGENCE = {"T": 8.0, "L1": 10.0, "L2": 12.0, "L3": 15.0, "L4": 20.0, "L5": 25.0, "L6": 27.0, "S": 25.0}


def screw_axes(p: CasePlan, g: _Geo) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(vertebra, side, head, tip) of each pedicle screw (points x, y, z in mm): through the
    pedicle's centre (level with the pedicles the phantom draws, 0.62 of the body's height, or
    10 mm below the S1 plate, on the plane leaning with the endplates: the sacral slope at S1),
    converging medially by ``_SCREW_CONVERGENCE``, the tip 0.6 half-depths in front of the body's
    axis (converging less where that would bring it within 4 mm of the midline); the head (the tulip holding the rod) 20 mm behind the pedicle's middle."""
    out = []
    for name in p.screws:
        v = p.vertebra(name)
        if name == "S":
            z0, k = -10.0 * g.s, np.tan(np.radians(v.tilt_top))
            b, w = v.b, 24.0 * g.s
        else:   # the pedicle's middle as _spine draws it (canal radius + pedicle half-width - 1)
            z0 = v.z_bottom + 0.62 * (v.z_top - v.z_bottom)
            k = np.tan(np.radians(0.5 * (v.tilt_top + v.tilt_bottom)))
            n = int(name[1:])
            f = (n - 1) / max((p.n_lumbar if name[0] == "L" else p.n_rib_pairs) - 1, 1)
            pw = (3.5 + 3.5 * f) if name[0] == "L" else (2.5 + 1.5 * f)
            b, w = v.b, ({"T": 7.5, "L": 9.0}[name[0]] + pw - 1.0) * g.s
        conv = float(np.radians(_SCREW_CONVERGENCE.get(name, _SCREW_CONVERGENCE["T"])))
        sx0, sy0 = float(g.sx(v.z_centre if name != "S" else 0.0)), float(g.sy(v.z_centre if name != "S" else 0.0))
        for sg in (-1, 1):
            ped = np.array([sx0 + sg * w, sy0 + b + 6.0 * g.s])       # the pedicle's middle
            # (converging no more than keeps the tip 4 mm beside the midline)
            reach = ped[1] - (sy0 - 0.6 * b)
            cv = min(conv, np.arctan((w - 4.0) / reach))
            d = np.array([-sg * np.sin(cv), -np.cos(cv)])              # forwards and medially
            tip_len = reach / np.cos(cv)
            tip, head = ped + tip_len * d, ped - (20.0 * g.s) * d
            zt = lambda y: z0 + k * (y - sy0)        # the plane through the axis at z0  # noqa: E731
            out.append((name, sg, np.array([head[0], head[1], zt(head[1])]), np.array([tip[0], tip[1], zt(tip[1])])))
    return out


def _pedicle_screws(P: Painter, p: CasePlan, g: _Geo, rng, metal: float) -> None:
    """Posterior fixation: titanium pedicle screws (6-7 mm thick, 5.5 in the thorax) in each
    vertebra of ``p.screws``, their heads (tulips, 12-14 mm) joined on each side by a rod of
    5.5-6 mm contoured through them."""
    axes = screw_axes(p, g)
    r_rod = float(rng.uniform(2.75, 3.0))
    for sg in (-1, 1):
        heads = []
        for name, side, head, tip in axes:
            if side != sg:
                continue
            r = (3.0 if name[0] != "T" else 2.75) + float(rng.uniform(0, 0.5))
            P.tube([list(head), list(tip)], r, metal)
            P.tube([list(head + [0, 4.0, 0]), list(head - [0, 4.0, 0])], 6.5, metal)
            heads.append(list(head + [0, 2.0, 0]))
        if len(heads) >= 2:
            P.tube(heads, r_rod, metal)


def _metal(P: Painter, p: CasePlan, g: _Geo, rng) -> None:
    s, lm = g.s, p.landmarks
    metal = 3000
    if p.metal == "spine_rods":
        _pedicle_screws(P, p, g, rng, metal)
    elif p.metal == "hip_prosthesis":
        sg = float(rng.choice([-1, 1]))
        zf = lm["femoral_head"]
        fx = p.body_x_mm + sg * 88 * s
        y_fh = float(g.sy(0.0)) - 50 * s
        P.ellipse(zf - 22 * s, zf + 22 * s, fx, y_fh, 22 * s, 22 * s, metal, taper_mm=22 * s)
        P.tube([[fx, y_fh, zf], [fx + sg * 38 * s, y_fh + 10 * s, zf - 35 * s],
                [fx + sg * 36 * s, y_fh + 15 * s, zf - 170 * s]], 6.0, metal)
    elif p.metal == "clips":
        l1 = p.vertebra("L1").z_centre
        for _ in range(int(rng.integers(3, 8))):
            x0 = p.body_x_mm + rng.uniform(-80, 80)
            z0 = rng.uniform(lm["femoral_head"] + 30, l1 + 40)
            y0 = float(g.sy(z0)) - rng.uniform(40, 110)
            d = rng.normal(0, 1, 3)
            d *= 4.0 / np.linalg.norm(d)
            P.tube([[x0 - d[0], y0 - d[1], z0 - d[2]], [x0 + d[0], y0 + d[1], z0 + d[2]]], 1.5, metal)


#: Thin cortical shells (vertebral body wall, iliac wing, sacrum, sternum), as a fraction of solid
#: cortical bone: the partial volume of a 0.5-1.5 mm cortex in a ~1 mm voxel.
_THIN_SHELL = 0.4
#: Relative amplitude of the texture of cortical bone (thickness) and cancellous bone (density).
_SHELL_AMP = 0.4
_SPONGY_AMP = 0.3
_RIB_AMP = 0.25
#: Half-width (mm) of the band around the body centre blurred by the point-spread function.
_BLUR_HALF_WIDTH_MM = 85.0


@lru_cache(maxsize=4)
def _bone_table(seed: int = 20240613, scales: tuple = ((0.9, 0.6), (4.0, 0.8))) -> Texture:
    """The bone texture table of a style, one per process (fixed seed: 1 MB and ~0.03 s CPU to make,
    the same in every process; cases differ by where each shape samples it)."""
    return Texture.make(np.random.default_rng(seed), scales_cells=scales)


#: HU from which a voxel counts as metal (bone stays below ~1700 HU, implants are painted at 3000).
METAL_HU = 2500


def _metal_streaks(hu: np.ndarray, spacing_mm: tuple, rng, amplitude_hu: float) -> None:
    """Streak artefacts of metal, in place: in every slice holding metal, bright and dark lines
    through the metal's centre (beam hardening and photon starvation), their strength growing
    with the amount of metal in the slice and falling off with the distance from it. Metal voxels
    keep their value.

    One streak pattern per case (6-12 lines at random angles, each brighter or darker, 1-3 mm
    wide) is centred on each slice's metal centroid and scaled by ``amplitude_hu`` times the
    slice's metal area relative to the largest one (a thin rod streaks less than a femoral head).
    """
    _, dy, dx = spacing_mm
    n, rows, cols = hu.shape
    metal = hu >= METAL_HU
    area = metal.sum(axis=(1, 2))
    slices = np.flatnonzero(area)
    if not slices.size:
        return
    half_r, half_c = int(150 / dy), int(150 / dx)        # streaks fade within ~15 cm
    yy = np.arange(-half_r, half_r + 1, dtype=np.float32)[:, None] * dy
    xx = np.arange(-half_c, half_c + 1, dtype=np.float32)[None, :] * dx
    r = np.hypot(yy, xx)
    pattern = np.zeros(r.shape, dtype=np.float32)
    for _ in range(int(rng.integers(6, 13))):
        th = rng.uniform(0, np.pi)
        d = np.abs(xx * np.sin(th) - yy * np.cos(th))
        w = rng.uniform(1.0, 3.0)
        pattern += rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0) * np.exp(-0.5 * (d / w) ** 2)
    pattern *= 1.0 / (1.0 + r / 40.0)
    a_max = float(area.max())
    for i in slices:
        rr, cc = np.nonzero(metal[i])
        r0, c0 = int(rr.mean()), int(cc.mean())
        amp = amplitude_hu * np.sqrt(area[i] / a_max)
        # the pattern's window clipped to the image
        y0, y1 = max(r0 - half_r, 0), min(r0 + half_r + 1, rows)
        x0, x1 = max(c0 - half_c, 0), min(c0 + half_c + 1, cols)
        pat = pattern[y0 - r0 + half_r:y1 - r0 + half_r, x0 - c0 + half_c:x1 - c0 + half_c]
        sub = hu[i, y0:y1, x0:x1]
        keep = sub >= METAL_HU
        add = np.clip(sub + np.rint(amp * pat), HU_RANGE[0], HU_RANGE[1]).astype(np.int16)
        np.copyto(sub, add, where=~keep)


def _tilt(hu: np.ndarray, tilt_deg: float, thickness_mm: float, y_mm: np.ndarray, y_pivot_mm: float) -> None:
    """Gantry tilt, in place: the slice plane leans by ``tilt_deg`` about the left-right axis, so
    row y of slice i shows the anatomy of slice i + (y - y_pivot) tan(tilt) / thickness (to the
    nearest slice; beyond the scan's ends the end slices repeat). Rows at ``y_pivot_mm`` (the L3
    body's centre) are unchanged, so the ground truth holds there."""
    k = np.rint((y_mm - y_pivot_mm) * np.tan(np.radians(tilt_deg)) / thickness_mm).astype(int)
    n = hu.shape[0]
    idx0 = np.arange(n)
    for shift in np.unique(k):
        if shift == 0:
            continue
        rows = np.flatnonzero(k == shift)
        r0, r1 = rows[0], rows[-1] + 1            # k is monotonic in y: one run of rows
        hu[:, r0:r1] = np.take(hu[:, r0:r1], np.clip(idx0 + shift, 0, n - 1), axis=0)


def _kernel_inplane(hu: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], kernel: str) -> None:
    """The reconstruction kernel in the box: standard = one binomial blur (the scanner's point
    spread), soft = two, sharp = an unsharp mask (2 a - blur(a)), which overshoots at edges: a
    bright rim outside bone and a dark one inside, as bone kernels show."""
    if kernel == "sharp":
        r0, r1 = max(rows[0], 0), min(rows[1], hu.shape[1])
        c0, c1 = max(cols[0], 0), min(cols[1], hu.shape[2])
        for i0 in range(0, hu.shape[0], 16):
            a = hu[i0:i0 + 16, r0:r1, c0:c1]
            b = a.copy()
            _blur_inplane(b, (0, b.shape[1]), (0, b.shape[2]))
            np.subtract(np.left_shift(np.clip(a, -1024, 3071), 1), b, out=a)
        return
    for _ in range(2 if kernel == "soft" else 1):
        _blur_inplane(hu, rows, cols)


def _blur_inplane(hu: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    """Blur the in-plane box ``rows`` x ``cols`` (index ranges [lo, hi)) of every slice in place
    with the binomial kernel [1, 2, 1] / 4 along rows and columns: a Gaussian of sigma 0.71 px,
    0.4-0.7 mm at 0.6-1 mm pixels (the scanner's point-spread function softens bone edges).

    int16 arithmetic throughout (|a + 2b + c| <= 4 * 3071 fits; the shift rounds down, which
    leaves flat regions exact), in chunks of slices; the box's outermost rows and columns keep
    their values.
    """
    r0, r1 = max(rows[0], 0), min(rows[1], hu.shape[1])
    c0, c1 = max(cols[0], 0), min(cols[1], hu.shape[2])
    if r1 - r0 < 3 or c1 - c0 < 3:
        return
    for i0 in range(0, hu.shape[0], 16):
        a = hu[i0:i0 + 16, r0:r1, c0:c1]
        h = np.left_shift(a[:, :, 1:-1], 1)   # in-place sums: no temporary per term
        h += a[:, :, :-2]
        h += a[:, :, 2:]
        h >>= 2
        v = np.left_shift(h[:, 1:-1], 1)
        v += h[:, :-2]
        v += h[:, 2:]
        v >>= 2
        a[:, 1:-1, 1:-1] = v


def _add_noise(hu: np.ndarray, sigma_hu: float, rng, grain_px: float = 0.9, zcorr: float = 0.0) -> None:
    """Add spatially correlated noise in place, from a small bank of noise slices (cheap: a few
    int16 operations per voxel) and clip to the scanner's range. ``grain_px`` is the Gaussian
    sigma of the correlation: small for sharp kernels (fine grain), large for soft ones
    (blotches). ``zcorr``: correlation of neighbouring slices' noise (a first-order
    autoregression along z, weights quantised to sixteenths: slice noise = (k * previous +
    c * fresh) / 16 with k^2 + c^2 ~ 256, so the standard deviation stays ``sigma_hu``)."""
    n, rows, cols = hu.shape
    pad = 64
    bank = rng.standard_normal((4, rows + pad, cols + pad), dtype=np.float32)
    bank = gaussian_filter(bank, sigma=(0, grain_px, grain_px))
    bank *= sigma_hu / bank.std()
    # (clipped at 4.5 sigma: 16 x (previous + fresh) stays within int16 up to sigma ~ 220 HU)
    bank = np.rint(np.clip(bank, -4.5 * sigma_hu, 4.5 * sigma_hu)).astype(np.int16)
    k = rng.integers(0, 4, n)
    oy = rng.integers(0, pad, n)
    ox = rng.integers(0, pad, n)
    kz = int(round(16 * np.clip(zcorr, 0.0, 0.95)))
    cz = np.int16(round(np.sqrt(256 - kz * kz)))
    prev = None
    for i in range(n):
        fresh = bank[k[i], oy[i]:oy[i] + rows, ox[i]:ox[i] + cols]
        if kz and prev is not None:
            cur = np.multiply(fresh, cz, dtype=np.int16)
            cur += np.multiply(prev, np.int16(kz), dtype=np.int16)
            cur += np.int16(8)
            cur >>= 4
            prev = cur
        else:
            prev = fresh
        hu[i] += prev
    np.clip(hu, HU_RANGE[0], HU_RANGE[1], out=hu)


def render_volume(plan: CasePlan, buffer: np.ndarray | None = None) -> np.ndarray:
    """Render a case.

    Args:
        plan: from :func:`l3loc.synth.anatomy.plan_case`.
        buffer: optional 1-D int16 scratch array of at least ``prod(plan.shape)`` elements to
            render into (the result is a view of it). Reusing one buffer across cases saves the
            page faults of a fresh allocation, about a fifth of the time of a large case.

    Returns:
        ``hu[slice S->I, row A->P, col R->L]`` int16, shape ``plan.shape``, spacing
        ``plan.spacing_mm``; slice i is centred at body-frame z ``plan.slice_z_mm[i]``.
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
    P = Painter(hu, plan.slice_z_mm, plan.spacing_mm[0], x_mm, y_mm)
    g = _geometry(plan)
    st = STYLES[plan.style]
    # scanner choices of the style, from their own generator (the case's anatomy does not move)
    srng = np.random.default_rng([plan.seed, plan.index, 4])
    kernel = _choice(srng, st.kernel_rates)
    # bone density falls with age: cancellous 350 HU at 20 years to ~150 at 90; osteoporotic
    # bone 80-150 HU (mostly below the window: the bodies show little more than their cortex) with
    # a thinner cortex
    spongy = float(np.clip(380 - 3.0 * (plan.age - 20) + rng.normal(0, 25), 130, 380))
    cortex = float(np.clip(1150 - 4.0 * (plan.age - 20) + rng.normal(0, 60), 650, 1250))
    if plan.osteoporosis:
        spongy = float(srng.uniform(80, 150))
        cortex *= float(srng.uniform(0.8, 0.95))
    _soft_tissue(P, plan, g, rng)
    # a separate generator for the texture offsets keeps every other random value of a case as
    # it was before bone was textured
    trng = np.random.default_rng([plan.seed, plan.index, 3])
    table = _bone_table(st.texture_seed, st.texture_scales)
    tex = lambda amp: table.moved(trng, amp * st.texture_amp)  # noqa: E731
    _head(P, plan, g, cortex)
    _spine(P, plan, g, cortex, spongy, rng, tex)
    _chest_wall(P, plan, g, cortex, spongy, tex)
    _pelvis_legs(P, plan, g, cortex, spongy, tex)
    _arms(P, plan, g, bone=True)
    _metal(P, plan, g, rng)
    if plan.metal != "none":
        _metal_streaks(hu, plan.spacing_mm, srng, srng.uniform(150, 450) * st.streak_scale)
    # the point-spread function only where the network looks: the frontal MIP's unmasked middle
    # (about +-77 mm of the body centre at 1 mm) holds the sagittal slab too, and only rows of
    # the body; blurring whole slices would cost a third more time per case
    col_c = plan.body_x_mm / dx + (cols - 1) / 2
    half = int(np.ceil(_BLUR_HALF_WIDTH_MM / dx))
    row_front = (g.back_y - 2 * float(g.b_out.v.max())) / dy + (rows - 1) / 2
    row_back = g.back_y / dy + (rows - 1) / 2
    _kernel_inplane(hu, (int(row_front) - 2, int(row_back) + 3), (int(col_c) - half, int(col_c) + half + 2), kernel)
    if plan.tilt_deg:
        l3 = plan.vertebra("L3")
        _tilt(hu, plan.tilt_deg, plan.spacing_mm[0], y_mm, float(g.sy(l3.z_centre)))
    # kernels trade noise for sharpness: a sharp kernel's noise is stronger and finer
    noise_f, grain_f = {"soft": (0.7, 1.5), "standard": (1.0, 1.0), "sharp": (1.5, 0.6)}[kernel]
    _add_noise(hu, plan.noise_hu * st.noise_scale * noise_f, rng, st.grain_px * grain_f, plan.noise_zcorr)
    return hu
