"""The spine of a case plan: its vertebrae (:class:`Vertebra`), their sizes, endplate wedges,
lordosis, fractures and osteophytes, the per-case sizes of the bony parts and the levels of
pedicle screws (see anatomy.py for the plan as a whole and the naming of transitional anatomy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l3loc.synth.config import ANATOMIES, Anatomy, choice

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
        spinous, spinous_height: factors on the spinous process's length and (lumbar, cervical)
            height; spinous_rise: mm its plate lies above its usual place (lumbar, cervical);
            spinous_deg: degrees added to a thoracic one's slope; arch_rise: mm the laminae and
            articular processes lie above their usual place; facet: factor on the articular
            processes' size. Drawn per level by :func:`vary_posterior_elements` (defaults: the
            one shape per region of earlier phantom generations).
        arch: the region ("T" or "L") whose arch (spinous process, pedicles, canal) the vertebra
            carries; "" = its own. pedicle, transverse: factors on its pedicles' width and (lumbar)
            transverse processes' length. Drawn per case by :func:`vary_level_features` from the
            anatomy family (defaults: the mean schedule, arches turning lumbar below the last rib).
        lumbar_blend: 0..1, how far a thoracic arch has turned towards the lumbar shape (its
            spinous process shorter, flatter and taller, its pedicles and canal wider); drawn per
            case by :func:`taper_arches` (default 0: a full thoracic arch).
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
    spinous: float = 1.0
    spinous_height: float = 1.0
    spinous_rise: float = 0.0
    spinous_deg: float = 0.0
    arch_rise: float = 0.0
    facet: float = 1.0
    arch: str = ""
    pedicle: float = 1.0
    transverse: float = 1.0
    lumbar_blend: float = 0.0

    @property
    def z_centre(self) -> float:
        return 0.5 * (self.z_top + self.z_bottom)

    @property
    def arch_region(self) -> str:
        """The region whose arch the vertebra carries: ``arch``, else its own (C, T, L, S)."""
        return self.arch or self.name[0]

    def heights(self, b: float | None = None) -> tuple[float, float]:
        """(anterior, posterior) body height (mm) at ``b`` mm (default: the half-depth) in front
        of and behind the axis."""
        b = self.b if b is None else b
        d = np.tan(np.radians(self.tilt_top)) - np.tan(np.radians(self.tilt_bottom))
        h = self.z_top - self.z_bottom
        return h - b * d, h + b * d


#: Share of the lumbar lordosis (L1 upper to S1 upper endplate) in each lumbar disc and body,
#: from the lowest up (L5/S1, L4/5, ...; L5, L4, ...): about two thirds lie at L4-S1 and the discs
#: carry most of it, the L5 body is the most wedged (Been et al. 2010, Damasceno et al. 2006).
_DISC_SHARE = (0.30, 0.22, 0.14, 0.08, 0.04, 0.02)
_BODY_SHARE = (0.12, 0.06, 0.03, 0.01, 0.0, 0.0)


def spine_shape(nrng: np.random.Generator, n_ribs: int, n_lumbar: int, age: float, osteo: bool,
                family: Anatomy = ANATOMIES["default"], grng: np.random.Generator | None = None) -> dict:
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

    Slope, lordosis and the spread of its shares are the anatomy ``family``'s; so are the
    per-level size scatter and the caudal growth of the lumbar bodies and discs, the latter drawn
    from ``grng`` (a stream of its own, so that the default family's cases stay as they were).
    """
    ss = float(nrng.uniform(*family.sacral_slope_deg))
    ll = ss + float(nrng.uniform(*family.lordosis_over_slope_deg))
    spread = (1.0 - family.wedge_spread, 1.0 + family.wedge_spread)
    dj = np.array(_DISC_SHARE[:n_lumbar]) * nrng.uniform(*spread, n_lumbar)
    bj = np.array(_BODY_SHARE[:n_lumbar]) * nrng.uniform(*spread, n_lumbar)
    tot = dj.sum() + bj.sum()
    p_deg = float(np.clip((age - 30) / 60, 0, 0.7))
    degen = [float(nrng.uniform(0.5, 0.8)) if nrng.random() < p_deg else 1.0 for _ in range(2)]
    fx = {}
    if nrng.random() < 0.01 + (0.25 if osteo else 0.08) * np.clip((age - 45) / 40, 0, 1):
        for _ in range(1 if nrng.random() < 0.8 else 2):
            name = choice(nrng, {f"T{n_ribs - 1}": 0.15, f"T{n_ribs}": 0.30, "L1": 0.28, "L2": 0.14,
                                  "L3": 0.08, "L4": 0.05})
            kind = "wedge" if nrng.random() < 0.65 else "crush"
            fx[name] = (kind, float(nrng.uniform(0.15, 0.40)), float(nrng.uniform(1.2, 1.6)))
    spur = float(np.clip((age - 40) / 40, 0, 1) * nrng.uniform(0.3, 1.2))
    growth = (1.0, 1.0) if grng is None else (float(grng.uniform(*family.body_growth)),
                                              float(grng.uniform(*family.disc_growth)))
    return {"sacral_slope": ss, "disc_wedge": ll * dj / tot, "body_wedge": ll * bj / tot, "degen": degen,
            "fractures": fx, "spur_severity": spur, "level_jitter": family.level_jitter,
            "body_growth": growth[0], "disc_growth": growth[1]}


def build_spine(rng, n_ribs: int, n_lumbar: int, s: float, age: float = 50.0,
                 brng: np.random.Generator | None = None, shape: dict | None = None,
                 nrng: np.random.Generator | None = None) -> list[Vertebra]:
    """Stack the vertebrae upwards from the sacrum (body frame z), with growing heights.

    Lumbar bodies 25-30 mm high, 40-50 mm wide and 30-35 mm deep, growing from L1 down; discs
    8-12 mm in the lumbar spine (centre height), thinner in the thorax, narrowing with age (up
    to a third by 90, more in some people than others). ``brng`` draws what earlier phantom
    generations did not have (body width, disc ageing, endplate hollows), so the other draws of
    a case stay as they were. ``shape`` (:func:`spine_shape`; none: level endplates) wedges the
    discs and bodies: the endplate angles run from the sacral slope at S1 up the lumbar spine,
    each disc and body turning them by its wedge, and relax to level in the lower thorax; a
    disc stays at least 1.5 mm high at its lower edge. ``nrng`` draws the osteophytes."""
    brng = np.random.default_rng(0) if brng is None else brng
    shape = shape or {"sacral_slope": 0.0, "disc_wedge": np.zeros(n_lumbar), "body_wedge": np.zeros(n_lumbar),
                      "degen": [1.0, 1.0], "fractures": {}, "spur_severity": 0.0,
                      "level_jitter": ANATOMIES["default"].level_jitter, "body_growth": 1.0, "disc_growth": 1.0}
    grow_body, grow_disc = 3.5 * shape["body_growth"], 2.5 * shape["disc_growth"]
    width = float(np.clip(brng.normal(1.0, 0.05), 0.88, 1.12))   # slender to stocky bodies
    ageing = float(np.clip((age - 35.0) / 55.0, 0.0, 1.0) * brng.uniform(0.1, 0.35))
    # (name, body height, disc height below it, half-width, half-depth, rib, endplate hollow),
    # caudal first
    specs = []
    for k in range(n_lumbar, 0, -1):
        f = (k - 1) / max(n_lumbar - 1, 1)            # 0 at L1, 1 at the last lumbar
        specs.append((f"L{k}", 26 + grow_body * f, 9 + grow_disc * f, 20 + 4.5 * f, 15 + 2 * f, False, 1.6))
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
        jit = rng.normal(1.0, shape["level_jitter"], 3)
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


#: Mean length of the last lumbar vertebra's spinous process against the others' (the L5 one is
#: the shortest; L1-L4 are alike).
_LAST_LUMBAR_SPINOUS = 0.8


def vary_posterior_elements(prng: np.random.Generator, verts: list[Vertebra], s: float) -> None:
    """Vary each vertebra's posterior elements on its own (cervical, thoracic, lumbar; not the
    sacrum): spinous length x0.75-1.25 (x0.8 on average for the last lumbar), height x0.7-1.3,
    the plate +-4 mm up or down, a thoracic one's slope +-10 degrees, laminae and articular
    processes +-3 mm, articular processes x0.7-1.3 (ranges chosen to overlap between neighbouring
    levels, not measured). Why: with one shape per region, a case's lumbar arches differed only
    by their place in the curve and their tilt, where real arches differ from level to level and
    person to person. It did not change how often a sagittal net names L3 with neither the ribs
    nor the sacrum in the image (benchmarks/count_cues.py; benchmarks/README.md, seventh
    session)."""
    lumbar = [v for v in verts if v.name[0] == "L"]
    for v in verts:
        if v.name == "S":
            continue
        mean = _LAST_LUMBAR_SPINOUS if v is lumbar[-1] else 1.0
        v.spinous = float(mean * np.clip(prng.normal(1.0, 0.12), 0.75, 1.25))
        v.spinous_height = float(np.clip(prng.normal(1.0, 0.15), 0.7, 1.3))
        v.spinous_rise = float(prng.uniform(-4.0, 4.0) * s)
        v.spinous_deg = float(np.clip(prng.normal(0.0, 5.0), -10.0, 10.0))
        v.arch_rise = float(prng.uniform(-3.0, 3.0) * s)
        v.facet = float(np.clip(prng.normal(1.0, 0.15), 0.7, 1.3))


def vary_level_features(frng: np.random.Generator, verts: list[Vertebra], family: Anatomy) -> int:
    """Give each vertebra the per-level features the anatomy ``family`` draws (:class:`Anatomy`):
    where the arches turn from thoracic to lumbar, how much the lumbar pedicles widen, each
    level's own pedicle and transverse process factors. The default family draws nothing it
    uses (every factor stays 1, every arch its own region). Returns the arch transition's shift
    (0 = below the last rib-bearing vertebra)."""
    shift = int(choice(frng, family.arch_transition))
    ribbed = [v for v in verts if v.rib]
    below = [v for v in verts if v.name[0] == "L"]
    if shift < 0 and ribbed:
        for v in ribbed[shift:]:
            v.arch = "L"
    elif shift > 0:
        for v in below[:shift]:
            v.arch = "T"
    growth = float(frng.uniform(*family.pedicle_growth))
    n = len(below)
    for k, v in enumerate(below):
        f = k / max(n - 1, 1)
        # the lumbar pedicle half-width is 3.5 + 3.5 f mm (l3loc.synth.skeleton): this makes it
        # 3.5 + 3.5 f growth
        v.pedicle = (1.0 + f * growth) / (1.0 + f)
    if family.process_jitter > 0:
        for v in verts:
            if v.name != "S":
                v.pedicle *= float(np.clip(frng.normal(1.0, family.process_jitter), 0.6, 1.4))
                v.transverse = float(np.clip(frng.normal(1.0, family.process_jitter), 0.6, 1.4))
    return shift


def taper_arches(trng: np.random.Generator, verts: list[Vertebra], family: Anatomy) -> float:
    """Grade the thoracic arches above the thoracolumbar transition into lumbar ones over
    ``t`` levels, ``t`` drawn from ``family.arch_taper``: the j-th thoracic arch above the first
    lumbar one gets ``lumbar_blend = 1 - j / (t + 1)`` (t = 1: the last thoracic arch half
    lumbar; t = 2.5: 0.71, 0.43, 0.14 on the last three). Returns ``t`` (0 for the default
    family, which draws nothing)."""
    lo, hi = family.arch_taper
    if hi <= 0:
        return 0.0
    t = float(trng.uniform(lo, hi))
    first_lumbar = next(i for i, v in enumerate(verts) if v.arch_region == "L")
    for j, v in enumerate(reversed(verts[:first_lumbar]), start=1):
        if v.arch_region != "T":
            break
        v.lumbar_blend = max(0.0, 1.0 - j / (t + 1.0))
    return t


def bone_sizes(brng: np.random.Generator, s: float, age: float, arch: tuple) -> dict:
    """Per-case sizes of the bony parts a bone MIP shows, from published adult ranges (mm), and
    the looks of the posterior elements (fractions of cortical bone; ``arch``: the arch's range)."""
    return {
        # transverse process of L3 beyond the pedicle (the longest; L1 and L5 are shorter)
        "tp_l3": float(brng.uniform(26, 34) * s),
        # lumbar spinous processes: broad horizontal plates 25-35 mm long, 15-20 mm high
        "spinous_l": float(brng.uniform(25, 35) * s),
        # thoracic spinous processes: long, sloping down 40-60 degrees below the horizontal
        "spinous_t_deg": float(brng.uniform(40, 60)),
        # rib shaft cross-section: flat and tall, 5-7 mm thick and 10-13 mm high, about the area
        # of the round 7-9 mm tube it replaced (real rib sections are elongated along z, inertial
        # moment ratios well above 1: Holcombe et al. 2019, 2023). Made for the anatomy: made 5 mm
        # thick, ircad_07's lowest ribs fade as round ones did, flat ones less
        # (phantom_vs_real.py --thick-mm 5; benchmarks/README.md, ninth session)
        "rib_r": float(brng.uniform(2.6, 3.4) * s),
        "rib_half_height": float(brng.uniform(5.0, 6.5) * s),
        # degrees of axial rotation per mm of lateral shift of a scoliotic vertebra
        "rot_per_mm": float(brng.uniform(0.6, 1.2)),
        # sacral slope: the S1 endplate against the horizontal
        "sacral_slope_deg": float(brng.uniform(30, 45)),
        # iliac wing half-span at the crest, measured from the wing's centre
        "wing_mm": float(brng.uniform(70, 84) * s),
        # costal cartilage: fraction calcified (rises with age, varies a lot)
        "cartilage_calc": float(np.clip((age - 30) / 60 * brng.uniform(0.3, 1.3), 0, 1)),
        # transverse processes' shell, a fraction of solid cortical bone, over their inner two
        # thirds ("root") and, as a fraction of that, over their outer third ("tip"). Real ones
        # vary: TPTBox's L3 fades from about its body column's value to half of it (root 0.5,
        # tip 0.7: benchmarks/lumbar_frontal_mip.py), others stay bright bars to the tip; one
        # look (or the old uniform bars, 0.7 and 1) taught the nets to count levels by it
        "tp_root": float(brng.uniform(0.4, 0.75)),
        "tp_tip": float(brng.uniform(0.55, 1.0)),
        # the arch (laminae, articular and spinous processes), a fraction of solid cortical bone.
        # TPTBox's L2-L4 read about 1100 HU behind the body, nearly four times the body
        # (benchmarks/lumbar_frontal_mip.py): thick cortical plates, painted at about 1.0; the
        # phantoms once painted them at 0.5-0.7. Nets lean on one brightness: fine-tuned on solid
        # arches (generation 21), they found 17 dim-arched generation-1 cases at a wrong level
        # where the nets before had 1; so it varies per case over both looks (``arch``: the
        # range, SynthConfig.arch_of_cortex)
        "arch": float(brng.uniform(*arch)),
        # the lowest rib pair's extra descent below the horizontal out from the tubercle, as a
        # frontal view sees it leave the spine (the two pairs above get 2/3 and 1/3 of it): real
        # scans show 20-50 degrees (ircad_07's 11th ribs about 45); one slope for every case
        # (25 degrees up to generation 22) let nets tell the last rib from a transverse process
        # by its angle
        "low_rib_deg": float(brng.uniform(20, 50)),
    }


def lordosis_from_wedges(lumbar: list[Vertebra], sac: Vertebra) -> None:
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


def screw_levels(nrng: np.random.Generator, verts: list[Vertebra], n_ribs: int) -> list[str]:
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
    where = choice(nrng, {"S": 0.4, "last": 0.3, "above": 0.15, "thoracolumbar": 0.15})
    lo = {"S": len(names) - 1, "last": len(names) - 2, "above": len(names) - 3,
          "thoracolumbar": names.index("L2")}[where]
    return names[lo - n + 1:lo + 1]
