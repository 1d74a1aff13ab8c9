"""The bones of a rendered case: the spine (bodies, endplates, discs, arches, processes,
osteophytes), ribs, sternum and scapulae, sacrum, pelvis and femora, the skull, and pedicle
screws. Bone is textured (``tex(amplitude)``, from phantom.py's bone table); see phantom.py for
the tissue values and why thin shells are painted below solid cortical bone.

About 450 lines, over the ~400 rule on purpose: the bones share the shell and texture amplitudes
and the endplate geometry (``_plate``), and splitting the column from the rest would only
scatter them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from l3loc.synth.anatomy import CasePlan
from l3loc.synth.painter import Lin, Painter

if TYPE_CHECKING:
    from l3loc.synth.phantom import Geo

#: Thin cortical shells (vertebral body wall, iliac wing, sacrum, sternum), as a fraction of solid
#: cortical bone: the partial volume of a 0.5-1.5 mm cortex in a ~1 mm voxel.
_THIN_SHELL = 0.4
#: Relative amplitude of the texture of cortical bone (thickness) and cancellous bone (density).
_SHELL_AMP = 0.4
_SPONGY_AMP = 0.3
_RIB_AMP = 0.25


def _rot(dx: float, dy: float, th: float) -> tuple[float, float]:
    """(dx, dy) rotated by ``th`` radians in the axial plane (x towards y)."""
    return dx * np.cos(th) - dy * np.sin(th), dx * np.sin(th) + dy * np.cos(th)


#: Transverse process length relative to L3's, by lumbar level (the last lumbar one: 0.65).
_TP_FACTOR = {1: 0.55, 2: 0.8, 3: 1.0, 4: 0.85, 5: 0.75, 6: 0.7}


def _plate(v, g: Geo, which: str) -> tuple[float, float]:
    """(slope dz/dy, pivot y) of a vertebra's "top" or "bottom" endplate: the plate passes
    through the column's axis at its z and leans by its tilt (0 slope when within 0.2 degrees
    of level: painted level, cheaper)."""
    deg, z = (v.tilt_top, v.z_top) if which == "top" else (v.tilt_bottom, v.z_bottom)
    return (float(np.tan(np.radians(deg))) if abs(deg) >= 0.2 else 0.0, float(g.sy(z)))


def _plates(v, g: Geo):
    """``Painter.ellipse``'s ``tilt`` for a body between its endplates (None when both are level)."""
    lo, hi = _plate(v, g, "bottom"), _plate(v, g, "top")
    return (lo, hi) if (lo[0] or hi[0]) else None


def _spurs(P: Painter, up, lo, g: Geo, a: float, b: float, cortex: float, tex) -> None:
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


#: canal radius (mm, before the case's scale) of each region's arch
_CANAL = {"C": 8.0, "T": 7.5, "L": 9.0}


def _pedicle(arch: str, fa: float) -> tuple[float, float]:
    """Pedicle half-width and half-height (mm, before the case's scale) of a region's arch,
    ``fa`` of the way down its region (thoracic and lumbar pedicles widen caudally)."""
    return {"C": (2.5, 3.5), "T": (2.5 + 1.5 * fa, 5.0 + 1.5 * fa), "L": (3.5 + 3.5 * fa, 7.5)}[arch]


def spine(P: Painter, p: CasePlan, g: Geo, cortex: float, spongy: float, rng, tex) -> None:
    s, bone = g.s, p.bone
    arch_hu = bone["arch"] * cortex      # laminae, articular and spinous processes (spine.bone_sizes)
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
        # the arch (canal, pedicles, spinous process) is of its own region unless the family
        # moved the thoracolumbar transition (x.arch): a borrowed lumbar arch is shaped as the
        # first lumbar one, a borrowed thoracic arch as the last thoracic one
        arch = x.arch_region
        rc = _CANAL[arch] * s                                     # canal radius
        k = int(x.name[1:])
        f = (k - 1) / max(p.n_lumbar - 1, 1) if region == "L" else (k - 1) / max(p.n_rib_pairs - 1, 1)
        fa = f if arch == region else float(arch == "T")
        pw, ph = (v * s for v in _pedicle(arch, fa))               # pedicle half-width, half-height
        pw *= x.pedicle
        lb = x.lumbar_blend                   # a thoracic arch graded towards the first lumbar one
        if lb:
            lw, lh = (v * s for v in _pedicle("L", 0.0))
            rc += lb * (_CANAL["L"] * s - rc)
            pw += lb * (lw * x.pedicle - pw)
            ph += lb * (lh - ph)
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
        zl = lift * ring + x.arch_rise                            # the arch's rise
        P.ellipse(ylo - disc_below - 0.1 * h_below + zl, yhi - 0.35 * h + zl, cx, cy, rc + 5 * s, rc + 4.5 * s,
                  arch_hu, inner=0.72,
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
            fs = x.facet * s
            P.ellipse(yhi - 0.1 * h + zl, yhi + 0.35 * disc_above + zl, sx0 + ax, sy0 + ay, 4.0 * fs, 5.0 * fs,
                      arch_hu, taper_mm=2.0, texture=tex(_SHELL_AMP))
            P.ellipse(ylo - 0.35 * disc_below + zl, ylo + 0.35 * h + zl, sx0 + ax, sy0 + ay + 2.0 * s, 3.5 * fs,
                      4.5 * fs, arch_hu, taper_mm=2.0, texture=tex(_SHELL_AMP))
            # transverse processes: lumbar ones straight out, longest at L3; thoracic ones back
            # and out to the rib's tubercle. Thin plates of a thin cortex around little marrow,
            # their shell drawn per case (spine.bone_sizes): real ones range from bright bars to
            # the tip to a fade to about half near the tip
            tz = ylo + 0.55 * h + lift * (x.b + 0.6 * rc)
            if region == "L":
                lt = (bone["tp_l3"] * (_TP_FACTOR[k] if k < p.n_lumbar else 0.65) * float(rng.normal(1, 0.04))
                      * x.transverse)
                x0 = rc + pw
                # (from a sphere's radius out of the pedicle: a cap over it would fill its ring)
                ends = [_rot(sg * (x0 + max(f * lt, 3.0 * s)), x.b + 0.6 * rc, th) for f in (0.0, 0.65, 1.0)]
                pts = [[sx0 + ex, sy0 + ey, tz] for ex, ey in ends]
                P.tube(pts[:2], 3.0 * s, bone["tp_root"] * cortex, 0.6 * spongy, cortex_mm=1.0,
                       texture=tex(_SHELL_AMP), z_radius_mm=4.5 * s)
                P.tube(pts[1:], 2.2 * s, bone["tp_root"] * bone["tp_tip"] * cortex, 0.6 * spongy, cortex_mm=1.0,
                       texture=tex(_SHELL_AMP), z_radius_mm=3.2 * s)
            else:
                # the last two thoracic ones are short (the 11th and 12th ribs do not reach them;
                # T12's is a rudimentary tubercle): a frontal view sees the lowest ribs leave the
                # spine without a bar of bone level beside them
                lt = (15.0 * (0.4 if k == p.n_rib_pairs else 0.7 if k == p.n_rib_pairs - 1 else 1.0)
                      if region == "T" else 8.0) * s
                b0 = _rot(sg * (rc + pw), ring - 2.0, th)
                b1 = _rot(sg * (rc + pw + lt), ring + 0.5 * lt, th)
                P.tube([[sx0 + b0[0], sy0 + b0[1], tz], [sx0 + b1[0], sy0 + b1[1], tz + 2.0]], 3.5 * s,
                       bone["tp_root"] * cortex, spongy, texture=tex(_SHELL_AMP))
        # spinous process: lumbar ones broad and horizontal, thoracic ones long and sloping down
        # (each level's own length, height and place: spine.vary_posterior_elements); a lumbar
        # plate spans the arch's lower part: level with the lower body and the disc below
        plate_lo, plate_hi = ylo - 0.8 * disc_below, ylo + 0.55 * h
        if arch == "T":
            ls = (28.0 + 12.0 * np.sin(np.pi * fa)) * s * x.spinous
            ang = np.radians(bone["spinous_t_deg"] * (0.6 + 0.4 * np.sin(np.pi * fa)) + x.spinous_deg)
            z0, zr = zc - 0.1 * h, 3.2 * s
            if lb:  # shorter, flatter and taller, from lower on the arch, as the lumbar plate
                ls += lb * (bone["spinous_l"] * x.spinous - ls)
                ang *= 1.0 - lb
                z0 += lb * (0.5 * (plate_lo + plate_hi) - z0)
                zr += lb * (0.5 * x.spinous_height * (plate_hi - plate_lo) - zr)
            q0 = _rot(0.0, ring + rc + 2.0, th)
            q1 = _rot(0.0, ring + rc + 2.0 + ls * np.cos(ang), th)
            P.tube([[sx0 + q0[0], sy0 + q0[1], z0], [sx0 + q1[0], sy0 + q1[1], z0 - ls * np.sin(ang)]],
                   3.2 * s, arch_hu, spongy, z_radius_mm=zr)
        else:
            ls = (bone["spinous_l"] if arch == "L" else 18.0 * s) * x.spinous
            qx, qy = _rot(0.0, ring + rc + 3.0 + 0.5 * ls, th)
            lo0, hi0 = plate_lo, plate_hi if arch == "L" else ylo + 0.45 * h     # (cervical: lower)
            mid = 0.5 * (lo0 + hi0) + lift * qy + x.spinous_rise
            half = 0.5 * x.spinous_height * (hi0 - lo0)
            sp_lo, sp_hi = mid - half, mid + half
            P.ellipse(sp_lo, sp_hi, sx0 + qx, sy0 + qy, 3.0 * s, 0.5 * ls, arch_hu, texture=tex(_SHELL_AMP))
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


def _low_rib_weight(k: int, n: int) -> float:
    """How much rib k of n is one of the lowest, descending ribs: 1 for the last pair, two
    thirds and one third for the two above, 0 higher up."""
    return float(np.clip((k - (n - 3)) / 3.0, 0.0, 1.0))


def chest_wall(P: Painter, p: CasePlan, g: Geo, cortex: float, spongy: float, tex) -> None:
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
        # a very short last pair is a slim stub that ends short_rib_mm beyond the tubercle,
        # pointing where a longer rib would run, whatever the chest's width
        stub_mm = p.bone["short_rib_mm"] if k == n and p.short_12th_rib else None
        th_end = 23.0 if stub_mm is not None else p.rib_ends_deg[k - 1]
        # a rib runs from its head on the body back and out to the transverse process, then
        # out, forwards and down: its front end lies 2-4 vertebrae below its head, lower ribs
        # descending more. The upper ribs run nearly level behind the chest before they bend
        # down; the lowest three pairs slope down from the spine already, neck included: their
        # heads sit on the upper half of their own body and, in a frontal view of a real scan,
        # the 11th and 12th ribs leave the spine at 20-50 degrees below the horizontal, where
        # the lumbar transverse processes stand level
        drop = (55 + 60 * k / n) * s
        th = np.linspace(22.0, th_end, max(int(th_end / 6), 4))
        frac = (th - 22.0) / (180.0 - 22.0)
        head_x, tubercle_x = vt.a + 3, vt.a + 14 * s     # out from the spine's centre
        out_mm = np.maximum(a_c(z0) * np.sin(np.radians(th)) - tubercle_x, 0.0)
        low = _low_rib_weight(k, n)
        slope = float(np.tan(np.radians(p.bone["low_rib_deg"]))) * low   # mm down per mm out
        head_z = z0 + 0.25 * (vt.z_top - vt.z_bottom) * low
        tubercle_z = head_z + 3 * s * (1 - low) - slope * (tubercle_x - head_x)
        zr = tubercle_z + 1 * s - drop * frac ** 1.5 - slope * out_mm
        r = p.bone["rib_r"] * (1.15 if k == 1 else 1.0)
        rz = p.bone["rib_half_height"]
        if stub_mm is not None:
            r, rz = 0.7 * r, 0.6 * rz
        sx0, sy0 = float(g.sx(z0)), float(g.sy(z0))
        for sg in (-1, 1):
            head = [sx0 + sg * head_x, sy0 + 0.4 * vt.b, head_z]
            tubercle = [sx0 + sg * tubercle_x, sy0 + vt.b + 16 * s, tubercle_z]
            arc = [[float(bx + sg * a_c(z) * np.sin(np.radians(t))), float(g.cy(z) + b_c(z) * np.cos(np.radians(t))), float(z)]
                   for t, z in zip(th, zr)]
            if stub_mm is not None:
                out = np.subtract(arc[0], tubercle)
                end = np.add(tubercle, out * min(stub_mm / max(np.hypot(out[0], out[1]), 1e-6), 1.0))
                end[2] = tubercle[2] - slope * stub_mm
                arc = [end.tolist()]
            # a thin cortex (0.5-1 mm: a voxel sees about half of solid bone) around marrow; in
            # front of the side the rib is thinner and flatter (a frontal view sees its front
            # part dimmer). Measured on the network's input (benchmarks/phantom_vs_real.py), the
            # lowest ribs of real scans read 0.4-0.9 of the lumbar spine's brightest pixels;
            # at 2/3 of solid bone the phantoms' read 0.7-1.3
            n_back = int(np.searchsorted(th, 110.0)) + 1
            P.tube([head, tubercle] + arc[:n_back], r, 0.5 * cortex, 0.85 * spongy, cortex_mm=1.2,
                   texture=tex(_RIB_AMP), z_radius_mm=rz)
            if n_back < len(arc):
                P.tube(arc[n_back - 1:], 0.85 * r, 0.35 * cortex, 0.7 * spongy, cortex_mm=1.0,
                       texture=tex(_RIB_AMP), z_radius_mm=0.85 * rz)
            if k <= min(10, n - 2):   # costal cartilage to the sternum (1-7) or the costal margin
                t_end = 176.0 if k <= 7 else 165.0
                tc = np.linspace(th_end, t_end, 6)
                zc = (tubercle_z + 1 * s - drop * ((tc - 22.0) / 158.0) ** 1.5 - slope * out_mm[-1]
                      + (tc - th_end) * 0.25 * s * (k > 5))
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


def _scapula(P: Painter, p: CasePlan, g: Geo, sg: int, sa, sb, cortex: float, spongy: float, tex) -> None:
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


def pelvis_legs(P: Painter, p: CasePlan, g: Geo, cortex: float, spongy: float, tex) -> None:
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


def skull(P: Painter, p: CasePlan, g: Geo, cortex: float) -> None:
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


def screw_axes(p: CasePlan, g: Geo) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
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
        else:   # the pedicle's middle as spine draws it (canal radius + pedicle half-width - 1)
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


def pedicle_screws(P: Painter, p: CasePlan, g: Geo, rng, metal: float) -> None:
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
