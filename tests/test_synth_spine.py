"""Phantoms: the shape of the lower spine and what ageing, injury and surgery do to it (lordotic
wedging, degenerate discs, compression fractures, osteophytes, pedicle screws), the arms across
the abdomen, z-correlated noise and the partial volume of leaning edges, checked on the plan and
where they are rendered; the ground truth follows the rendered bodies."""
from dataclasses import replace

import numpy as np
import pytest

from l3loc.synth import anatomy, phantom, spine
from l3loc.synth.anatomy import plan_case
from l3loc.synth.config import PRESETS
from l3loc.synth.painter import Painter
from l3loc.synth.acquisition import add_noise
from l3loc.synth.phantom import geometry, render_volume
from l3loc.synth.scene import METAL_HU, forearm_axes
from l3loc.synth.skeleton import _TP_FACTOR, screw_axes

# 1 mm slices and pixels on a 256 matrix: the lumbar spine and the sacrum at full detail, in
# scans that start above the dome
FINE = replace(PRESETS["tiny"], thickness_mm={1.0: 1.0}, inplane_mm=(1.0, 1.0), matrix=256,
               fov_rates={"abdomen": 1.0}, low_top_rate=0.0, scoliosis_rate=0.0, osteoporosis_rate=0.0,
               tilt_rate=0.0, crop_rate=0.0, metal_rates={"none": 1.0}, contrast_rate=0.0,
               oral_contrast_rate=0.0)


def _first(config, want, seed: int = 0, n: int = 400):
    return next(p for p in (plan_case(seed, i, config) for i in range(n)) if want(p))


def _quiet(monkeypatch):
    """Render without noise (the geometry alone)."""
    monkeypatch.setattr(phantom, "add_noise", lambda *a, **k: None)


def _tan(deg):
    return np.tan(np.radians(deg))


def _disc_edges(up, lo):
    """(anterior, posterior) height of the disc between two bodies (plan geometry)."""
    b = max(up.b, lo.b)
    d, w = up.z_bottom - lo.z_top, b * (_tan(lo.tilt_top) - _tan(up.tilt_bottom))
    return d + w, d - w


def _pelvic_case(p):
    return (p.l3_in_fov and p.n_lumbar == 5 and p.n_rib_pairs == 12 and p.age < 50
            and p.slice_z_mm[-1] < -40 and p.slice_z_mm[0] > p.vertebra("L1").z_top)


def _column(hu, plan, x_mm, y_mm):
    """HU along z at an in-plane point, averaged over 3 x 3 pixels."""
    _, dy, dx = plan.spacing_mm
    r = int(round(y_mm / dy + (plan.shape[1] - 1) / 2))
    c = int(round(x_mm / dx + (plan.shape[2] - 1) / 2))
    return hu[:, r - 1:r + 2, c - 1:c + 2].astype(np.float32).mean(axis=(1, 2))


# --- lordotic wedging, discs -----------------------------------------------------------------

def test_lumbar_wedges_make_the_lordosis_from_a_sacral_slope_of_30_to_50_degrees():
    plans = [plan_case(3, i) for i in range(300)]
    for p in plans:
        sac, l1 = p.vertebra("S"), p.vertebra("L1")
        assert 30 <= sac.tilt_top <= 50 and p.bone["sacral_slope_deg"] == sac.tilt_top
        lumbar = [p.vertebra(f"L{k}") for k in range(1, p.n_lumbar + 1)] + [sac]
        for up, lo in zip(lumbar[:-1], lumbar[1:]):
            assert min(_disc_edges(up, lo)) >= 1.5 - 1e-9
        if not p.ground_truth()["fractures"] and p.age < 30:      # no fracture, no degeneration
            # lordosis L1-S1 (the angle between their plates) = sacral slope + 10-25 degrees: L1's
            # upper plate leans back by 10-25 degrees
            assert 10 - 1e-6 <= (sac.tilt_top - l1.tilt_top) - sac.tilt_top <= 25 + 1e-6
            discs = [_disc_edges(up, lo)[0] for up, lo in zip(lumbar[:-1], lumbar[1:])]
            assert int(np.argmax(discs)) == len(discs) - 1, discs      # L5/S1 tallest in front
            last = p.vertebra(f"L{p.n_lumbar}")
            ant, post = last.heights()
            assert ant > post                                          # the L5 body is wedged
    # the lumbar curve comes from the wedges: its apex (the most anterior body) lies at L3-L4
    # mostly (Roussouly), always in front of the S1 plate
    apex = []
    for p in plans:
        if p.n_lumbar == 5 and not p.ground_truth()["fractures"]:
            lumbar = [p.vertebra(f"L{k}") for k in range(1, 6)]
            ys = [v.y for v in lumbar]
            apex.append(lumbar[int(np.argmin(ys))].name)
            assert min(ys) < p.vertebra("S").y - 5
    assert np.mean([a in ("L3", "L4") for a in apex]) > 0.85 and np.mean([a in ("L2", "L3", "L4") for a in apex]) > 0.95


def test_varied_anatomy_family_keeps_the_scans_and_scatters_what_marks_each_level():
    """The held-out anatomy family draws other spines into the same scans: the field of view,
    acquisition and scene of each case are the default family's; what tells one lumbar level
    from the next by its look (bodies and discs growing from L1 down, the lordosis' apex at L3-L4,
    a sacral slope of 30-50 degrees) holds far less often."""
    varied = replace(PRESETS["default"], anatomy="varied")
    pairs = [(plan_case(3, i), plan_case(3, i, varied)) for i in range(300)]
    for a, b in pairs:
        for key in ("fov_type", "n_lumbar", "n_rib_pairs", "age", "scale", "contrast_phase", "metal",
                    "arms", "spacing_mm", "noise_hu", "inplane_binning", "slice_overlap", "style"):
            assert getattr(a, key) == getattr(b, key), key
        assert (a.anatomy, b.anatomy) == ("default", "varied") and b.ground_truth()["anatomy"] == "varied"
    assert any(a.vertebra("L3").z_top != b.vertebra("L3").z_top for a, b in pairs)

    def marks(plans):
        five = [p for p in plans if p.n_lumbar == 5 and not p.ground_truth()["fractures"]]
        body = lambda p, k: p.vertebra(f"L{k}").z_top - p.vertebra(f"L{k}").z_bottom   # noqa: E731
        disc = lambda p, k: p.vertebra(f"L{k}").z_bottom - p.vertebra(f"L{k + 1}").z_top   # noqa: E731
        apex = [int(np.argmin([p.vertebra(f"L{k}").y for k in range(1, 6)])) + 1 for p in five]
        return (np.mean([body(p, 4) > body(p, 1) for p in five]), np.mean([disc(p, 3) > disc(p, 1) for p in five]),
                np.mean([a in (3, 4) for a in apex]), [p.vertebra("S").tilt_top for p in plans])
    taller, wider, apex, slope = marks([a for a, _ in pairs])
    assert taller > 0.9 and wider > 0.95 and apex > 0.85 and 30 <= min(slope) and max(slope) <= 50
    taller, wider, apex, slope = marks([b for _, b in pairs])
    assert taller < 0.85 and wider < 0.9 and apex < 0.75 and min(slope) < 25 and max(slope) > 52
    with pytest.raises(ValueError, match="unknown anatomy"):
        replace(PRESETS["default"], anatomy="nope")


def test_lower_lumbar_discs_narrow_with_age():
    plans = [plan_case(4, i) for i in range(400)]

    def low_discs(p):   # L4/5 + L5/S1 centre heights (the S1 plate lies at z = 0)
        last, pen = p.vertebra(f"L{p.n_lumbar}"), p.vertebra(f"L{p.n_lumbar - 1}")
        return last.z_bottom + (pen.z_bottom - last.z_top)

    young = np.mean([low_discs(p) for p in plans if p.age < 35])
    old = np.mean([low_discs(p) for p in plans if p.age > 70])
    assert old < 0.8 * young, (old, young)


def test_rendered_s1_plate_leans_at_the_sacral_slope_and_the_l5_s1_disc_opens_in_front(monkeypatch):
    _quiet(monkeypatch)
    plan = _first(FINE, _pelvic_case)
    hu = render_volume(plan)
    g, sac, l5 = geometry(plan), plan.vertebra("S"), plan.vertebra("L5")
    z = plan.slice_z_mm
    y0 = float(g.sy(0.0))
    # the S1 plate at points 10 mm in front of and behind the axis (midline): the top of a bony
    # run (> 150 HU under <= 150) nearest where the plan puts the plate, within 8 mm. (Walking
    # down from L5's centre fails with a steep lordosis: the column behind the axis misses L5's
    # body and meets L5's lower rim, or no disc at all, over the sacrum.)
    tops = []
    for dy in (-10.0, 10.0):
        col = _column(hu, plan, float(g.sx(0.0)), y0 + dy)
        planned = sac.z_top + dy * _tan(sac.tilt_top)
        run_tops = np.flatnonzero((col[1:] > 150) & (col[:-1] <= 150)) + 1
        run_tops = run_tops[np.abs(z[run_tops] - planned) <= 8]
        assert len(run_tops), (dy, planned)
        i = run_tops[np.argmin(np.abs(z[run_tops] - planned))]
        tops.append(z[i])
    slope = np.degrees(np.arctan((tops[1] - tops[0]) / 20.0))
    assert abs(slope - sac.tilt_top) < 5, (slope, sac.tilt_top)
    # the disc (~80 HU between the plates) is taller in front than behind
    heights = []
    for dy in (-0.6 * l5.b, 0.6 * l5.b):
        col = _column(hu, plan, float(g.sx(0.0)), float(g.sy(l5.z_bottom)) + dy)
        near = (z < l5.z_centre) & (z > -30)
        heights.append(int(((col < 150) & near).sum()))
    assert heights[0] > heights[1] + 3, heights


def test_leaning_plate_paints_each_voxel_with_its_slices_partial_volume():
    # 5 mm slices; the upper end leans at 0.5 mm/mm: at y = -5, 0, 5 mm it lies at z = -2.5, 0,
    # 2.5, so the slice [-2.5, 2.5] holds 0 %, 50 % and 100 % of the shape: a stair-step of
    # partial volumes along y, as thick slices show leaning bone edges
    hu = np.zeros((1, 3, 3), dtype=np.int16)
    P = Painter(hu, np.array([0.0]), 5.0, np.array([-5.0, 0.0, 5.0]), np.array([-5.0, 0.0, 5.0]))
    P.ellipse(-100.0, 0.0, 0.0, 0.0, 50.0, 50.0, 1000.0, tilt=((0.0, 0.0), (0.5, 0.0)))
    np.testing.assert_array_equal(hu[0, :, 1], [0, 500, 1000])


# --- posterior elements ------------------------------------------------------------------------

def test_posterior_elements_vary_per_level_with_ranges_that_overlap_between_levels():
    """Each level's arch is drawn on its own: L3's spinous process is no more often the longest
    of L1-L4 than any other's (its length does not mark L3), the last lumbar one is the
    shortest on average (as in real spines), and the draws come from their own generator (the
    rest of the plan, its ground truth included, is what it was without them)."""
    plans = [plan_case(3, i) for i in range(300)]
    five = [p for p in plans if p.n_lumbar == 5]
    length = np.array([[p.vertebra(f"L{k}").spinous for k in range(1, 6)] for p in five])
    rise = np.array([[p.vertebra(f"L{k}").spinous_rise for k in range(1, 6)] for p in five])
    longest = np.bincount(length[:, :4].argmax(axis=1), minlength=4) / len(five)
    assert np.all((longest > 0.12) & (longest < 0.40)), longest
    lo, hi = np.percentile(length, [10, 90], axis=0)
    assert np.all(lo[1:] < hi[:-1]) and np.all(lo[:-1] < hi[1:]), (lo, hi)   # neighbours overlap
    assert length[:, 4].mean() < 0.9 * length[:, :4].mean()
    assert rise.std(axis=0).min() > 1.5 and np.abs(np.corrcoef(rise[:, 1], rise[:, 2])[0, 1]) < 0.2


def test_drawing_the_posterior_elements_changes_nothing_else_in_the_plan(monkeypatch):
    varied = [plan_case(3, i) for i in range(20)]
    monkeypatch.setattr(anatomy, "vary_posterior_elements", lambda *a, **k: None)
    plain = [plan_case(3, i) for i in range(20)]
    for a, b in zip(varied, plain):
        assert a.ground_truth() == b.ground_truth()
        assert [(v.z_top, v.z_bottom, v.a, v.b, v.tilt_top) for v in a.vertebrae] == \
            [(v.z_top, v.z_bottom, v.a, v.b, v.tilt_top) for v in b.vertebrae]
        assert any(v.spinous != 1.0 for v in a.vertebrae) and all(v.spinous == 1.0 for v in b.vertebrae)


def test_rendered_lumbar_spinous_processes_reach_as_far_back_as_planned(monkeypatch):
    """L2's spinous process drawn long (x1.25) and L3's short (x0.75): in a midline strip each
    one's tip lies where its plan puts it (the canal, then the process), within 3 mm; with one
    length per region they would lie 7 mm from it each way."""
    _quiet(monkeypatch)
    plan = _first(FINE, _pelvic_case)
    for name, factor in (("L2", 1.25), ("L3", 0.75)):
        v = plan.vertebra(name)
        v.spinous, v.spinous_height, v.spinous_rise, v.arch_rise = factor, 1.0, 0.0, 0.0
    hu = render_volume(plan)
    g, z = geometry(plan), plan.slice_z_mm
    _, dy, dx = plan.spacing_mm
    y = (np.arange(plan.shape[1]) - (plan.shape[1] - 1) / 2) * dy
    x = (np.arange(plan.shape[2]) - (plan.shape[2] - 1) / 2) * dx
    s = plan.scale
    for name in ("L2", "L3"):
        v = plan.vertebra(name)
        below = plan.vertebra(f"L{int(name[1]) + 1}")
        ls, rc = plan.bone["spinous_l"] * v.spinous, 9.0 * s
        tip = float(g.sy(v.z_centre)) + v.b + 2 * rc + 4.5 + ls
        # the plate's middle: between the disc below and the body's lower half, risen with its tilt
        lift = np.tan(np.radians(0.5 * (v.tilt_top + v.tilt_bottom)))
        h = v.z_top - v.z_bottom
        mid = v.z_bottom + 0.5 * (0.55 * h - 0.8 * (v.z_bottom - below.z_top)) + lift * (tip - 0.5 * ls
                                                                                           - float(g.sy(v.z_centre)))
        rows = np.abs(z - mid) <= 3
        strip = np.abs(x - float(g.sx(v.z_centre))) <= 2
        bone = hu[rows][:, :, strip].max(axis=(0, 2)) > 300
        back = y[np.flatnonzero(bone)[-1]]
        assert abs(back - tip) <= 3.0, (name, back, tip)



def test_varied_family_moves_the_arch_transition_and_scatters_each_levels_processes():
    """The arches turn from thoracic to lumbar at the last rib-bearing vertebra in every default
    spine (an exact count a net could read); the varied family moves the turn a vertebra up or
    down in half its spines, widens the lumbar pedicles by its own amount per case and scatters
    each level's pedicles and transverse processes, so L3's are not always the longest. The
    default family draws none of it (byte-identical to before: every factor exactly 1)."""
    plain = [plan_case(3, i) for i in range(300)]
    varied = [plan_case(3, i, replace(PRESETS["default"], anatomy="varied")) for i in range(300)]
    assert all(p.arch_transition == 0 and p.ground_truth()["arch_transition"] == 0 for p in plain)
    assert all(v.arch == "" and v.pedicle == 1.0 and v.transverse == 1.0 for p in plain for v in p.vertebrae)
    shifts = np.array([p.arch_transition for p in varied])
    share = [np.mean(shifts == k) for k in (-1, 0, 1)]
    assert 0.15 < share[0] < 0.35 and 0.4 < share[1] < 0.6 and 0.15 < share[2] < 0.35, share
    for p in varied:
        last_rib = f"T{p.n_rib_pairs}"
        moved = {v.name: v.arch for v in p.vertebrae if v.arch}
        assert moved == {-1: {last_rib: "L"}, 0: {}, 1: {"L1": "T"}}[p.arch_transition], (p.name, moved)
        assert p.ground_truth()["arch_transition"] == p.arch_transition
    five = [p for p in varied if p.n_lumbar == 5]
    tp = np.array([[_TP_FACTOR[k] * p.vertebra(f"L{k}").transverse for k in range(1, 5)] for p in five])
    assert 0.4 < np.mean(tp.argmax(axis=1) == 2) < 0.9
    last = np.array([p.vertebra("L5").pedicle / p.vertebra("L1").pedicle for p in five])
    assert last.min() < 0.8 and last.max() > 1.2


def test_drawing_the_level_features_changes_nothing_else_in_the_plan(monkeypatch):
    config = replace(PRESETS["default"], anatomy="varied")
    drawn = [plan_case(3, i, config) for i in range(20)]
    monkeypatch.setattr(anatomy, "vary_level_features", lambda *a, **k: 0)
    bare = [plan_case(3, i, config) for i in range(20)]
    for a, b in zip(drawn, bare):
        ga, gb = a.ground_truth(), b.ground_truth()
        assert gb.pop("arch_transition") == 0 and ga.pop("arch_transition") in (-1, 0, 1) and ga == gb
        assert [(v.z_top, v.z_bottom, v.a, v.b, v.spinous) for v in a.vertebrae] == \
            [(v.z_top, v.z_bottom, v.a, v.b, v.spinous) for v in b.vertebrae]


def _l1_spinous_profile(monkeypatch, arch: str, blend: float = 0.0, outs=(0.3, 0.8)):
    """Render a pelvic case with L1 given ``arch`` (and ``lumbar_blend``) and plain posterior
    elements; return, at ``outs`` of a thoracic process's length behind its root, the mean and
    the extent (mm) of the bone's z in a midline strip, and the plan's (length, slope) of the
    last thoracic process."""
    _quiet(monkeypatch)
    plan = _first(FINE, _pelvic_case)
    v = plan.vertebra("L1")
    v.spinous, v.spinous_deg, v.arch_rise, v.spinous_rise = 1.0, 0.0, 0.0, 0.0
    v.arch, v.lumbar_blend = arch, blend
    g, z = geometry(plan), plan.slice_z_mm
    _, dy, dx = plan.spacing_mm
    y = (np.arange(plan.shape[1]) - (plan.shape[1] - 1) / 2) * dy
    x = (np.arange(plan.shape[2]) - (plan.shape[2] - 1) / 2) * dx
    s, h = plan.scale, v.z_top - v.z_bottom
    ls = 28.0 * s                                  # the last thoracic one's length (f = 1)
    ang = np.radians(plan.bone["spinous_t_deg"] * 0.6)
    root_y = float(g.sy(v.z_centre)) + v.b + 2 * 7.5 * s + 3.5
    root_z = v.z_centre - 0.1 * h
    strip = np.abs(x - float(g.sx(v.z_centre))) <= 2
    band = (z > root_z - ls * np.sin(ang) - 8) & (z < root_z + 8)
    hu = render_volume(plan)
    centres, extents = [], []
    for out in outs:
        cols = np.abs(y - (root_y + out * ls * np.cos(ang))) <= 1.0
        bone = hu[band][:, cols][:, :, strip].max(axis=(1, 2)) > 300
        assert bone.any(), (arch, blend, out)
        centres.append(z[band][bone].mean())
        extents.append(np.ptp(z[band][bone]) + plan.spacing_mm[0])
    return centres, extents, (ls, ang)


def test_rendered_thoracic_arch_on_l1_slopes_down_as_a_thoracic_spinous_process(monkeypatch):
    """L1 given a thoracic arch (the transition a vertebra lower): its spinous process is a rod
    sloping down at the plan's angle (in a midline strip, its bone 30 % and 80 % of the way out
    lies ``0.5 * ls * sin(angle)`` lower at the second, within 2 mm); with its own lumbar arch
    the process is a horizontal plate (less than half that drop)."""
    (t0, t1), _, (ls, ang) = _l1_spinous_profile(monkeypatch, "T")
    (l0, l1), _, _ = _l1_spinous_profile(monkeypatch, "")
    expected = 0.5 * ls * np.sin(ang)
    assert abs((t0 - t1) - expected) <= 2.0, (t0 - t1, expected)
    assert abs(l0 - l1) < 0.5 * expected, (l0 - l1, expected)


def test_varied_family_grades_the_last_thoracic_arches_into_lumbar_ones():
    """Real lower thoracic spinous processes shorten, flatten and grow taller towards the
    transition: the varied family grades the thoracic arches above the first lumbar one over
    0-2.5 levels (``lumbar_blend`` = 1 - j / (t + 1) on the j-th above it, 0 from t + 1 up),
    recorded as ``arch_taper``; the default family draws none of it."""
    plain = [plan_case(3, i) for i in range(100)]
    assert all(v.lumbar_blend == 0.0 for p in plain for v in p.vertebrae)
    assert all(p.ground_truth()["arch_taper"] == 0.0 for p in plain)
    varied = [plan_case(3, i, replace(PRESETS["default"], anatomy="varied")) for i in range(200)]
    tapers = np.array([p.arch_taper for p in varied])
    assert tapers.min() >= 0.0 and tapers.max() <= 2.5 and np.ptp(tapers) > 2.0
    for p in varied:
        arches = [v.arch_region for v in p.vertebrae]
        first = arches.index("L")
        above = p.vertebrae[:first][::-1]
        want = [max(0.0, 1.0 - j / (p.arch_taper + 1.0)) for j in range(1, len(above) + 1)]
        assert np.allclose([v.lumbar_blend for v in above], want), p.name
        assert all(v.lumbar_blend == 0.0 for v in p.vertebrae[first:])
        assert p.ground_truth()["arch_taper"] == round(p.arch_taper, 2)


def test_rendered_graded_thoracic_arch_is_flatter_and_taller(monkeypatch):
    """A thoracic arch 80 % of the way to lumbar: its spinous process drops less than half as
    much between 30 % and 70 % of the way out as a full thoracic one, and is at least 1.5 times
    as tall there (the plate it turns into)."""
    (f0, f1), (_, full_h), _ = _l1_spinous_profile(monkeypatch, "T", 0.0, outs=(0.3, 0.7))
    (g0, g1), (_, graded_h), _ = _l1_spinous_profile(monkeypatch, "T", 0.8, outs=(0.3, 0.7))
    assert abs(g0 - g1) < 0.5 * (f0 - f1), (g0 - g1, f0 - f1)
    assert graded_h >= 1.5 * full_h, (graded_h, full_h)

# --- fractures, the ground truth --------------------------------------------------------------

def _with_fracture(monkeypatch, name, kind, loss=0.4, density=1.5):
    shape = spine.spine_shape

    def fixed(nrng, n_ribs, n_lumbar, age, osteo, *family):
        out = shape(nrng, n_ribs, n_lumbar, age, osteo, *family)
        out["fractures"] = {name: (kind, loss, density)}
        return out
    monkeypatch.setattr(anatomy, "spine_shape", fixed)


def test_fractures_are_commoner_when_old_and_mostly_at_t11_to_l2():
    def fractures(age, osteo, n=2000):
        return [spine.spine_shape(np.random.default_rng([5, i]), 12, 5, age, osteo)["fractures"] for i in range(n)]
    young, old, porotic = fractures(40, False), fractures(80, False), fractures(80, True)
    rate = lambda fx: np.mean([bool(f) for f in fx])  # noqa: E731
    assert rate(young) < 0.02 and 0.05 < rate(old) < 0.12 and 0.18 < rate(porotic) < 0.32
    levels = [n for f in old + porotic for n in f]
    near = sum(n in ("T11", "T12", "L1", "L2") for n in levels)
    assert near >= 0.75 * len(levels) and any(n == "L3" for n in levels)


@pytest.mark.parametrize("kind", ["wedge", "crush"])
def test_fractured_l3_is_shorter_in_front_denser_and_still_the_truth(monkeypatch, kind):
    _quiet(monkeypatch)
    intact = _first(FINE, _pelvic_case)
    _with_fracture(monkeypatch, "L3", kind)
    plan = plan_case(intact.seed, intact.index, FINE)
    l3 = plan.vertebra("L3")
    # 40 % of the front lost; the back keeps all (wedge) or loses 20 % (crush)
    h0 = intact.vertebra("L3").z_top - intact.vertebra("L3").z_bottom
    assert (l3.z_top - l3.z_bottom) / h0 == pytest.approx(0.8 if kind == "wedge" else 0.7)
    ant, post = l3.heights()
    ant0, post0 = intact.vertebra("L3").heights()
    assert ant / post < 0.85 * ant0 / post0
    # the levels above come down by the height lost, the L3 centre by half of it
    assert plan.vertebra("L1").z_centre == pytest.approx(intact.vertebra("L1").z_centre - (h0 - (l3.z_top - l3.z_bottom)))
    hu = render_volume(plan)
    g = geometry(plan)
    # L3 is still the third vertebra below the last rib, and its row is its centre
    gt = plan.ground_truth()
    assert gt["fractures"] == {"L3": kind}
    assert gt["l3_slice"] == pytest.approx((plan.z_top_mm - l3.z_centre) / plan.spacing_mm[0])
    # rendered: bone runs on the axis' front and back from plate to plate, shorter in front
    runs = []
    for dy in (-0.7 * l3.b, 0.7 * l3.b):
        col = _column(hu, plan, float(g.sx(l3.z_centre)), float(g.sy(l3.z_centre)) + dy)
        i = int(round(gt["l3_slice"]))
        assert col[i] > 150                           # the truth's slice is inside the body
        top = bot = i
        while col[top - 1] > 150:
            top -= 1
        while col[bot + 1] > 150:
            bot += 1
        runs.append((bot - top + 1) * plan.spacing_mm[0])
    exp = [l3.heights(0.7 * l3.b)[0], l3.heights(0.7 * l3.b)[1]]
    assert runs[0] == pytest.approx(exp[0], abs=2.5) and runs[1] == pytest.approx(exp[1], abs=2.5), (runs, exp)
    # compacted cancellous bone (1.5 x): denser than the same body intact (the same texture
    # draws; beside another body the textures' own spread, +-30 %, blurs a 1.5 x), over nine
    # columns of the core
    def centre(plan, hu, name):
        v, g, z = plan.vertebra(name), geometry(plan), plan.slice_z_mm
        mid = np.abs(z - v.z_centre) < 0.2 * (v.z_top - v.z_bottom)
        return float(np.mean([np.median(_column(hu, plan, float(g.sx(v.z_centre)) + fx * v.a,
                                                float(g.sy(v.z_centre)) + fy * v.b)[mid])
                              for fx in (-0.45, 0.0, 0.45) for fy in (-0.45, 0.0, 0.45)]))
    dense, before = centre(plan, hu, "L3"), centre(intact, render_volume(intact), "L3")
    assert dense > 1.3 * before, (dense, before)


# --- osteophytes -------------------------------------------------------------------------------

def test_osteophytes_come_with_age():
    plans = [plan_case(6, i) for i in range(400)]
    spurred = lambda p: any(v.spur_top or v.spur_bottom for v in p.vertebrae)  # noqa: E731
    assert not any(spurred(p) for p in plans if p.age < 40)
    assert np.mean([spurred(p) for p in plans if p.age > 70]) > 0.6
    assert all(v.spur_top <= 9 and v.spur_bottom <= 9 for p in plans for v in p.vertebrae)


def test_spur_lips_the_plate_in_front_and_a_bridge_spans_the_disc(monkeypatch):
    _quiet(monkeypatch)
    plan = _first(FINE, _pelvic_case)
    l3, l4 = plan.vertebra("L3"), plan.vertebra("L4")
    for v in plan.vertebrae:
        v.spur_top = v.spur_bottom = 0.0
        v.bridge_below = False
    plain = render_volume(plan)
    l3.spur_bottom, l4.spur_top, l3.bridge_below = 6.0, 6.0, True
    spurred = render_volume(plan)
    g, z = geometry(plan), plan.slice_z_mm
    zd = 0.5 * (l3.z_bottom + l4.z_top)           # the disc's middle
    i = int(np.argmin(np.abs(z - zd)))
    d = 0.5 * (l3.b + l4.b)
    front = _column(spurred, plan, float(g.sx(zd)), float(g.sy(zd)) - d - 3.0)
    assert front[i] > 400 and _column(plain, plan, float(g.sx(zd)), float(g.sy(zd)) - d - 3.0)[i] < 150
    # behind the body (towards the canal) nothing grows
    back = lambda hu: _column(hu, plan, float(g.sx(zd)), float(g.sy(zd)) + d + 3.0)[i]  # noqa: E731
    assert back(spurred) == back(plain)


# --- spinal hardware --------------------------------------------------------------------------

def test_pedicle_screws_fix_2_to_4_consecutive_vertebrae():
    cfg = replace(PRESETS["default"], metal_rates={"spine_rods": 1.0})
    for i in range(100):
        p = plan_case(7, i, cfg)
        names = [v.name for v in p.vertebrae]
        assert 2 <= len(p.screws) <= 4
        k = names.index(p.screws[0])
        assert names[k:k + len(p.screws)] == p.screws


def test_rendered_screws_run_through_the_pedicles_into_the_bodies_with_streaks(monkeypatch):
    _quiet(monkeypatch)
    cfg = replace(FINE, metal_rates={"spine_rods": 1.0})
    plan = _first(cfg, lambda p: _pelvic_case(p) and "S" not in p.screws)
    hu = render_volume(plan)
    g = geometry(plan)
    _, dy, dx = plan.spacing_mm
    z = plan.slice_z_mm
    for name, sg, head, tip in screw_axes(plan, g):
        v = plan.vertebra(name)
        # the tip lies in the front half of the body, beside the midline, and is metal
        assert abs(tip[0] - g.sx(v.z_centre)) < v.a and -v.b < tip[1] - g.sy(v.z_centre) < 0
        assert v.z_bottom < tip[2] < v.z_top
        i = int(np.argmin(np.abs(z - tip[2])))
        r = int(round(tip[1] / dy + (plan.shape[1] - 1) / 2))
        c = int(round(tip[0] / dx + (plan.shape[2] - 1) / 2))
        assert hu[i, r - 2:r + 3, c - 2:c + 3].max() >= METAL_HU
    # both rods: metal on each side from the top screw's head to the bottom one's
    heads = [head[2] for _, _, head, _ in screw_axes(plan, g)]
    rows = np.flatnonzero((z < max(heads)) & (z > min(heads)))
    assert len(rows) > 20
    side = (np.arange(plan.shape[2]) - (plan.shape[2] - 1) / 2) * dx - plan.body_x_mm
    metal = (hu[rows] >= METAL_HU).any(axis=1)
    assert metal[:, side < -5].any(axis=1).all() and metal[:, side > 5].any(axis=1).all()
    # streaks: soft tissue near the screws leaves its range in the metal slices
    i = int(rows[len(rows) // 2])
    assert (hu[i] > 300).sum() > (hu[i] >= METAL_HU).sum() + 100 and (hu[i] < -200).any()


# --- arms -------------------------------------------------------------------------------------

def test_forearms_on_the_belly_cross_the_frontal_band_at_lumbar_levels(monkeypatch):
    _quiet(monkeypatch)
    wide = replace(FINE, inplane_mm=(2.0, 2.0), arms_raised_rate=0.0)
    plan = _first(wide, lambda p: _pelvic_case(p) and p.forearms == "belly" and p.fat_mm < 20)   # lean
    g = geometry(plan)
    for elbow, wrist in forearm_axes(plan, g):
        assert 10 * plan.scale - 1e-6 <= abs(wrist[0] - plan.body_x_mm) <= 90 * plan.scale + 1e-6
        # the radius' length (230-270 mm), from the elbow beside the trunk inwards, forwards, down
        assert 230 * plan.scale - 1e-6 <= np.linalg.norm(wrist - elbow) <= 270 * plan.scale + 1e-6
        assert abs(wrist[0] - plan.body_x_mm) < abs(elbow[0] - plan.body_x_mm) - 50
        assert wrist[1] < elbow[1] and wrist[2] < elbow[2]
    _, dy, dx = plan.spacing_mm
    x = (np.arange(plan.shape[2]) - (plan.shape[2] - 1) / 2) * dx - plan.body_x_mm
    z = plan.slice_z_mm
    lumbar = (z < plan.vertebra("L1").z_top) & (z > plan.vertebra("L5").z_bottom)
    band = (np.abs(x) > 55) & (np.abs(x) < 77)    # the frontal band beyond the transverse processes
    # bone in the band at lumbar levels (ribs, pelvis, arms): the same with the arms at the side
    # or raised, more with the forearms on the belly
    bone = {}
    for arms, forearms in (("down", "belly"), ("down", "side"), ("raised", "side")):
        hu = render_volume(replace(plan, arms=arms, forearms=forearms))
        bone[arms, forearms] = int((hu[lumbar][:, :, band].max(axis=1) > 500).sum())
        if arms == "raised":    # no arm beside the abdomen (above the cradle's rising rails)
            y = (np.arange(plan.shape[1]) - (plan.shape[1] - 1) / 2) * dy
            for i in np.flatnonzero(lumbar):
                outside = np.abs(x) > float(g.a_out(z[i])) + 10
                assert (hu[i][y < plan.back_y_mm - 70][:, outside] < -500).all()
    assert bone["down", "side"] == bone["raised", "side"]
    assert bone["down", "belly"] > bone["down", "side"] + 20, bone
    assert forearm_axes(replace(plan, arms="raised"), g) == []


# --- noise ------------------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, 0.25, 0.5])
def test_noise_of_neighbouring_slices_is_correlated_as_planned(rho):
    hu = np.zeros((60, 96, 96), dtype=np.int16)
    add_noise(hu, 30.0, np.random.default_rng(1), 0.9, rho)
    a = hu.astype(np.float64)
    r = np.corrcoef(a[:-1].ravel(), a[1:].ravel())[0, 1]
    assert r == pytest.approx(rho, abs=0.07) and a.std() == pytest.approx(30.0, rel=0.1), (r, a.std())


def test_thick_slices_have_more_z_correlated_noise():
    plans = [plan_case(8, i) for i in range(300)]
    contiguous = [p for p in plans if p.slice_overlap == 1.0]
    thick = [p.noise_zcorr for p in contiguous if p.spacing_mm[0] >= 2.0]
    thin = [p.noise_zcorr for p in contiguous if p.spacing_mm[0] < 2.0]
    assert min(thick) >= 0.1 and max(thick) <= 0.5 and max(thin) <= 0.2


def test_overlapping_slices_share_their_noise_as_they_share_their_data():
    """Slices ``overlap`` times as thick as their spacing: neighbours share 1 - 1/overlap of
    their profile, so of their quantum noise too; and thicker slices are less noisy."""
    plans = [plan_case(8, i) for i in range(300)]
    over = [p for p in plans if p.slice_overlap > 1.0]
    assert 0.15 * len(plans) < len(over) < 0.45 * len(plans)
    assert all(1.25 <= p.slice_overlap <= 2.0 and p.noise_zcorr >= 1 - 1 / p.slice_overlap - 1e-9 for p in over)
    p = over[0]
    twin = plan_case(8, p.index, replace(PRESETS["default"], overlap_rate=0.0))   # the same case, contiguous
    assert twin.vertebrae == p.vertebrae and twin.slice_overlap == 1.0
    assert p.noise_hu == pytest.approx(twin.noise_hu / np.sqrt(p.slice_overlap), abs=0.01)
    assert twin.slice_thickness_mm == p.spacing_mm[0]
    assert p.slice_thickness_mm == pytest.approx(p.spacing_mm[0] * p.slice_overlap)
