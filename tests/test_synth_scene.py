"""Phantoms: everything around the skeleton that a real scan puts into the [100, 1500] HU window
(contrast, table, metal streaks, kernels, noise, osteoporosis, tilt, crops, low-resolution
reconstructions) and the style families, at the level of geometry."""
from dataclasses import replace

import numpy as np
import pytest

from l3loc.synth.acquisition import bin_inplane, kernel_inplane, reconstruct_coarse, tilt
from l3loc.synth import anatomy
from l3loc.synth.anatomy import plan_case
from l3loc.synth.config import PRESETS, STYLES
from l3loc.synth.phantom import geometry, render_volume
from l3loc.synth.scene import METAL_HU, metal_streaks
from l3loc.synth.writers import _make_case

# 2.5 mm slices on a 3 mm in-plane grid, abdominal scans: a case renders in a fraction of a second
BASE = replace(PRESETS["tiny"], thickness_mm={2.5: 1.0}, inplane_mm=(3.0, 3.0), matrix=128,
               fov_rates={"abdomen": 1.0}, osteoporosis_rate=0.0, tilt_rate=0.0, crop_rate=0.0,
               metal_rates={"none": 1.0})


def _first(config, want=lambda p: True, seed: int = 0):
    return next(p for p in (plan_case(seed, i, config) for i in range(300)) if p.l3_in_fov and want(p))


def _px(plan, x_mm, y_mm):
    """(row, col) of an in-plane point (mm)."""
    _, dy, dx = plan.spacing_mm
    rows, cols = plan.shape[1:]
    return int(round(y_mm / dy + (rows - 1) / 2)), int(round(x_mm / dx + (cols - 1) / 2))


def _slice(plan, z):
    return int(np.argmin(np.abs(plan.slice_z_mm - z)))


def _patch_mean(hu, i, r, c, k=1):
    return float(hu[i, r - k:r + k + 1, c - k:c + k + 1].mean())


# --- contrast --------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["arterial", "portal", "excretory"])
def test_contrast_kidneys_are_bright_at_their_planned_levels_only_with_contrast(phase):
    plan = _first(replace(BASE, contrast_rate=1.0, phase_rates={phase: 1.0}))
    plain = replace(plan, contrast=False, contrast_phase="none")
    g = geometry(plan)
    # the kidneys' cortex, lateral of the medulla, at each kidney's centre (right: sg = -1)
    for sg, z in ((-1, plan.landmarks["kidney_right"]), (1, plan.landmarks["kidney_left"])):
        i = _slice(plan, z)
        r, c = _px(plan, float(g.sx(z)) + sg * 75 * plan.scale, float(g.sy(z)) + 8 * plan.scale)
        assert _patch_mean(render_volume(plan), i, r, c) > 110
        assert _patch_mean(render_volume(plain), i, r, c) < 90


def test_organs_beside_the_lumbar_spine_lie_at_no_fixed_vertebra(monkeypatch):
    """The aortic bifurcation lies in L4's body in about two thirds of the plans and anywhere from
    upper L3 to L5's centre in the rest; the kidneys scatter about L1, the right one lower or
    level. The draws come from their own generator: the skeleton and the labels stay those of
    plans drawn without them."""
    plans = [plan_case(5, i) for i in range(300)]
    in_l4, levels = [], []
    for p in plans:
        lm, l4 = p.landmarks, p.vertebra(f"L{min(4, p.n_lumbar)}")
        below = p.vertebra(f"L{min(5, p.n_lumbar)}").z_centre if p.n_lumbar > 4 else p.vertebra("S").z_top
        assert below - 1e-6 <= lm["aortic_bifurcation"] <= p.vertebra("L2").z_centre
        assert lm["ivc_confluence"] < lm["aortic_bifurcation"] and lm["kidney_right"] <= lm["kidney_left"]
        in_l4.append(l4.z_bottom <= lm["aortic_bifurcation"] <= l4.z_top)
        levels.append(lm["kidney_left"] - p.vertebra("L1").z_centre)
    assert 0.55 < np.mean(in_l4) < 0.85, np.mean(in_l4)
    assert 10 < np.std(levels) < 25 and abs(np.median(levels)) < 5
    monkeypatch.setattr(anatomy, "organ_levels", lambda *a: {})
    for p in plans[:20]:
        q = plan_case(p.seed, p.index)
        assert q.vertebrae == p.vertebrae and q.ground_truth() == p.ground_truth()


def test_contrast_aorta_ends_at_its_bifurcation():
    plan = _first(replace(BASE, contrast_rate=1.0, phase_rates={"arterial": 1.0}),
                  lambda p: p.calcification == 0.0
                  and p.slice_z_mm.min() < p.landmarks["aortic_bifurcation"] - 45)
    hu = render_volume(plan)
    g = geometry(plan)
    s, z_bif = plan.scale, plan.landmarks["aortic_bifurcation"]
    centre = lambda z: _px(plan, float(g.sx(z)) + 16 * s,   # noqa: E731
                           float(g.sy(z)) - 0.9 * plan.vertebra("L4").b - 13 * s)
    assert _patch_mean(hu, _slice(plan, z_bif + 15), *centre(z_bif + 15)) > 200
    assert _patch_mean(hu, _slice(plan, z_bif - 40), *centre(z_bif - 40)) < 120


def test_excretory_phase_fills_the_bladder_and_the_ureters():
    plan = _first(replace(BASE, contrast_rate=1.0, phase_rates={"excretory": 1.0},
                          fov_rates={"chest_abdomen_pelvis": 1.0}))
    hu = render_volume(plan)
    g = geometry(plan)
    zb = plan.landmarks["femoral_head"] + 5 * plan.scale
    r, c = _px(plan, plan.body_x_mm, float(g.cy(zb) - 0.45 * g.b_m(zb)))
    assert _patch_mean(hu, _slice(plan, zb), r, c) > 250
    # the ureters: bright dots beside the psoas at the last lumbar level, absent in portal phase
    z_l = plan.vertebra(f"L{plan.n_lumbar}").z_centre
    i = _slice(plan, z_l)
    portal = render_volume(replace(plan, contrast_phase="portal"))
    for sg in (-1, 1):
        r, c = _px(plan, float(g.sx(z_l)) + sg * 38 * plan.scale, float(g.sy(z_l)) - 14 * plan.scale)
        assert hu[i, r - 1:r + 2, c - 1:c + 2].max() > 250
        assert portal[i, r - 1:r + 2, c - 1:c + 2].max() < 200


def test_oral_contrast_brightens_bowel_and_calcification_the_aortic_wall():
    plan = _first(replace(BASE, contrast_rate=0.0), lambda p: p.calcification == 0)
    v = plan.vertebra("L1")
    lo, hi = _slice(plan, v.z_centre), _slice(plan, plan.vertebra("L3").z_bottom)
    base = render_volume(plan)[lo:hi + 1]

    def bright_soft(hu):   # voxels of [200, 700] HU anterior of the vertebral bodies
        g = geometry(plan)
        r_front, _ = _px(plan, 0.0, float(g.sy(v.z_centre)) - 25)
        return int(((hu[:, :r_front] > 200) & (hu[:, :r_front] < 700)).sum())

    oral = render_volume(replace(plan, oral_contrast=True))[lo:hi + 1]
    assert bright_soft(oral) > bright_soft(base) + 50
    calc = render_volume(replace(plan, calcification=1.0))[lo:hi + 1]
    assert (calc > 300).sum() > (base > 300).sum() + 5


# --- table, crop, tilt ------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["default", "smooth"])
def test_table_lies_under_the_back(style):
    plan = _first(replace(BASE, style=style))
    hu = render_volume(plan)
    i = _slice(plan, plan.vertebra("L3").z_centre)
    r_back, c = _px(plan, plan.body_x_mm, plan.back_y_mm)
    col = hu[i, :, c]
    table = np.flatnonzero(col[r_back + 1:] > -250) + r_back + 1   # shells, rails (foam: -850)
    assert table.size, "no table under the back"
    dy = plan.spacing_mm[1]
    # posterior of the skin of the back, within the plate's thickness
    assert ((table - r_back) * dy).min() >= 0 and ((table - r_back) * dy).max() <= 45
    assert (col[r_back + int(50 / dy):] < -500).all()


def test_tight_crop_cuts_the_body_at_the_sides_and_keeps_the_spine():
    plan = _first(replace(BASE, crop_rate=1.0))
    wide = _first(BASE)
    assert plan.cropped and plan.spacing_mm[2] * plan.shape[2] <= 381
    for p, cut in ((plan, True), (wide, False)):
        hu = render_volume(p)
        i = _slice(p, p.vertebra("L3").z_centre)
        r, _ = _px(p, 0.0, float(geometry(p).cy(p.vertebra("L3").z_centre)))
        edges = hu[i, r, [0, -1]]
        assert ((edges > -500).all()) == cut, edges
    assert 0 <= plan.ground_truth()["l3_slice"] < plan.shape[0]


def test_gantry_tilt_shifts_slices_with_distance_from_the_pivot():
    hu = np.zeros((20, 5, 1), dtype=np.int16)
    hu[10] = 100                                 # a plate in slice 10
    y = np.array([-20.0, -10.0, 0.0, 10.0, 20.0])
    tilt(hu, 45.0, 5.0, y, 0.0)                # 10 mm of y = 10 mm of z = 2 slices
    assert np.flatnonzero(hu[:, 2, 0]) == [10]   # the pivot row keeps its slice
    assert np.flatnonzero(hu[:, 3, 0]) == [8] and np.flatnonzero(hu[:, 4, 0]) == [6]
    assert np.flatnonzero(hu[:, 1, 0]) == [12] and np.flatnonzero(hu[:, 0, 0]) == [14]


# --- metal, kernels, noise, bone --------------------------------------------------------------

def test_metal_streaks_raise_and_lower_hu_outside_the_metal():
    n, size = 3, 161
    hu = np.full((n, size, size), 40, dtype=np.int16)
    yy, xx = np.mgrid[:size, :size] - size // 2
    disc = yy ** 2 + xx ** 2 <= 10 ** 2
    hu[1][disc] = 3000                           # metal only in slice 1
    metal_streaks(hu, (1.0, 1.0, 1.0), np.random.default_rng(0), 400.0)
    assert (hu[1][disc] == 3000).all()
    ring = (yy ** 2 + xx ** 2 > 15 ** 2) & (yy ** 2 + xx ** 2 < 60 ** 2)
    assert hu[1][ring].max() > 40 + 100 and hu[1][ring].min() < 40 - 100
    assert (hu[0] == 40).all() and (hu[2] == 40).all()


def test_hip_prosthesis_streaks_reach_the_window_outside_the_metal():
    plan = _first(replace(BASE, metal_rates={"hip_prosthesis": 1.0}, fov_rates={"chest_abdomen_pelvis": 1.0}))
    hu = render_volume(plan)
    i = _slice(plan, plan.landmarks["femoral_head"])
    metal = hu[i] >= METAL_HU
    assert metal.any()
    from scipy.ndimage import binary_dilation
    near = binary_dilation(metal, iterations=12) & ~binary_dilation(metal, iterations=3)
    soft = near & (hu[i] < 600)
    # soft tissue 30-60 HU around the metal: the streaks push some of it over the window's floor
    assert (hu[i][soft] > 200).sum() >= 3 and (hu[i][soft] < -150).sum() >= 3


def test_kernels_sharp_overshoots_soft_smooths():
    step = np.zeros((1, 12, 12), dtype=np.int16)
    step[:, :, 6:] = 1000
    out = {}
    for k in ("soft", "standard", "sharp"):
        a = step.copy()
        kernel_inplane(a, (0, 12), (0, 12), k)
        out[k] = a[0, 6]
    assert out["sharp"].max() > 1000 and out["sharp"].min() < 0          # rims both sides
    assert out["standard"][5] < out["soft"][5] and out["soft"][6] < out["standard"][6]


def test_noise_grows_as_slices_thin_and_dose_falls():
    thin = plan_case(0, 3, replace(BASE, thickness_mm={1.0: 1.0}))
    thick = plan_case(0, 3, replace(BASE, thickness_mm={5.0: 1.0}))
    assert thin.dose == thick.dose
    assert thin.noise_hu / thick.noise_hu == pytest.approx(np.sqrt(5.0), rel=1e-6)
    plans = [plan_case(1, i, BASE) for i in range(200)]
    dose = np.array([p.dose for p in plans])
    noise = np.array([p.noise_hu for p in plans])
    assert np.corrcoef(np.log(dose), np.log(noise))[0, 1] < -0.5


def test_osteoporotic_bodies_are_darker():
    plan = _first(BASE)
    l3 = plan.vertebra("L3")
    g = geometry(plan)
    i = _slice(plan, l3.z_centre)
    r, c = _px(plan, float(g.sx(l3.z_centre)), float(g.sy(l3.z_centre)))
    normal = _patch_mean(render_volume(plan), i, r, c)
    osteo = _patch_mean(render_volume(replace(plan, osteoporosis=True)), i, r, c)
    assert osteo < 160 < normal


# --- low-resolution reconstructions ----------------------------------------------------------

def test_bin_inplane_averages_whole_bins_and_drops_the_remainder_evenly():
    a = np.arange(2 * 8 * 7, dtype=np.int16).reshape(2, 8, 7)
    out = bin_inplane(a, 3)
    assert out.shape == (2, 2, 2) and out.dtype == np.int16
    # 8 rows = 2 bins + 2: one dropped at each end; 7 columns = 2 bins + 1: the last one dropped
    assert out[1, 0, 1] == round(float(a[1, 1:4, 3:6].mean()))
    assert out[0, 1, 0] == round(float(a[0, 4:7, 0:3].mean()))
    assert bin_inplane(a, 1) is a


def test_low_resolution_scan_is_the_smoothed_binned_render_and_thin_bone_fades():
    cfg = replace(BASE, inplane_mm=(1.0, 1.0), matrix=384, lowres_rate=1.0, lowres_mm=(4.0, 4.0),
                  fov_rates={"chest_abdomen_pelvis": 1.0})
    plan = _first(cfg, lambda p: p.n_rib_pairs == 12 and not p.short_12th_rib)
    assert plan.inplane_binning == 4
    fine = replace(plan, inplane_binning=1)
    hu, hu_fine = render_volume(plan), render_volume(fine)
    assert hu.shape == plan.acquired_shape == (plan.shape[0], 96, 96)
    np.testing.assert_array_equal(hu, reconstruct_coarse(hu_fine, 4))
    assert reconstruct_coarse(hu_fine, 1) is hu_fine
    gt = plan.ground_truth()
    assert gt["spacing_mm"] == [plan.spacing_mm[0], 4.0, 4.0] and gt["shape"] == list(hu.shape)
    assert gt["inplane_binning"] == 4
    assert gt["l3_slice"] == fine.ground_truth()["l3_slice"]      # the slices are untouched

    # partial volume: the lowest ribs' brightest pixels in a frontal MIP fall against the spine
    # column (its median: the column's brightest pixels are the solid arches' texture maxima,
    # which binning averages away as well)
    g = geometry(plan)
    z = plan.slice_z_mm
    ribs = (z < plan.vertebra("T11").z_top) & (z > plan.vertebra("T12").z_bottom)
    spine = (z < plan.vertebra("L1").z_top) & (z > plan.vertebra("L4").z_bottom)
    sx = float(g.sx(plan.vertebra("L2").z_centre))

    def rib_over_spine(vol, px):
        x = (np.arange(vol.shape[2]) - (vol.shape[2] - 1) / 2) * px
        front = vol.max(axis=1)
        beside = (np.abs(x - sx) >= 40) & (np.abs(x - sx) <= 130)
        return (np.percentile(front[ribs][:, beside], 99)
                / np.median(front[spine][:, np.abs(x - sx) <= 20]))

    assert rib_over_spine(hu, 4.0) < 0.85 * rib_over_spine(hu_fine, 1.0)

    # what the dataset writer stores: the binned scan's MIPs and spacing
    rec = _make_case((plan.seed, plan.index, cfg, None, None))
    assert rec["img_f"].shape == (plan.shape[0], 96) and rec["img_s"].shape == (plan.shape[0], 96)
    assert rec["gt"]["spacing_mm"] == gt["spacing_mm"]


def test_low_resolution_cases_keep_every_other_draw_and_occur_at_their_rate():
    plans = [plan_case(0, i, replace(PRESETS["default"], lowres_rate=0.3)) for i in range(300)]
    none = [plan_case(0, i, replace(PRESETS["default"], lowres_rate=0.0)) for i in range(300)]
    binned = np.array([p.inplane_binning > 1 for p in plans])
    assert 0.2 < binned.mean() < 0.4
    for p, q in zip(plans, none):
        assert replace(p, inplane_binning=1) == q
    for p in np.array(plans)[binned]:
        assert 2.0 - p.spacing_mm[2] / 2 <= p.acquired_spacing_mm[2] <= 5.0 + p.spacing_mm[2] / 2


# --- styles -----------------------------------------------------------------------------------

def test_styles_keep_the_cases_and_change_the_look():
    plans = {s: plan_case(0, 2, replace(BASE, style=s)) for s in STYLES}
    gts = {s: {k: v for k, v in p.ground_truth().items() if k != "style"} for s, p in plans.items()}
    vols = {s: render_volume(p) for s, p in plans.items()}
    names = sorted(STYLES)
    for a in names:
        assert gts[a] == gts[names[0]]                     # same case, same labels, same grid
        assert plans[a].vertebrae == plans[names[0]].vertebrae
    l3 = plans[names[0]].vertebra("L3")
    g = geometry(plans[names[0]])
    i = _slice(plans[names[0]], l3.z_centre)
    r, c = _px(plans[names[0]], float(g.sx(l3.z_centre)), float(g.sy(l3.z_centre)))
    for a in names:
        # the vertebral body is where it was in every style ...
        assert _patch_mean(vols[a], i, r, c) > 150
        for b in names:
            if a < b:   # ... but the pictures differ
                assert np.abs(vols[a].astype(np.int32) - vols[b]).mean() > 3
    with pytest.raises(ValueError, match="unknown style"):
        replace(BASE, style="nope")
