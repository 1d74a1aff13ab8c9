"""Everything of a rendered case but its skeleton and the scanner: the patient table, soft tissue
and organs (with the contrast phase), calcified plaques, the arms and forearms (soft tissue and
bone), metal implants and their streak artefacts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from l3loc.synth.acquisition import HU_RANGE
from l3loc.synth.anatomy import CasePlan
from l3loc.synth.config import STYLES
from l3loc.synth.painter import Lin, Painter
from l3loc.synth.skeleton import pedicle_screws

if TYPE_CHECKING:
    from l3loc.synth.phantom import Geo

#: HU from which a voxel counts as metal (bone stays below ~1700 HU, implants are painted at 3000).
METAL_HU = 2500


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


def soft_tissue(P: Painter, p: CasePlan, g: Geo, rng) -> None:
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
    arms(P, p, g, bone=False)
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
    for sg, zc in ((-1, lm["kidney_right"]), (1, lm["kidney_left"])):
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
    # vessels: aorta (ascending, arch, descending to its bifurcation, mostly at L4), iliacs, IVC
    _keep_draw = rng.uniform(180, 350) if p.contrast else None
    ao_hu = _enhanced(p, {"none": 42 + st.tissue_hu, "arterial": (250, 480), "portal": (150, 230),
                          "excretory": (110, 160)}, crng)
    z_bif = lm["aortic_bifurcation"]
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
    P.ellipse(lm["ivc_confluence"], dome, lambda z: g.sx(z) - 22 * s, lambda z: g.sy(z) - 30 * s, 11 * s, 9 * s, ivc)
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


def forearm_axes(p: CasePlan, g: Geo) -> list[tuple[np.ndarray, np.ndarray]]:
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


def arms(P: Painter, p: CasePlan, g: Geo, bone: bool) -> None:
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


def metal_implants(P: Painter, p: CasePlan, g: Geo, rng) -> None:
    s, lm = g.s, p.landmarks
    metal = 3000
    if p.metal == "spine_rods":
        pedicle_screws(P, p, g, rng, metal)
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


def metal_streaks(hu: np.ndarray, spacing_mm: tuple, rng, amplitude_hu: float) -> None:
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
