"""Synthetic phantoms: ground truth against the rendered anatomy, writers, determinism, rates."""
import logging
import math
from dataclasses import replace

import numpy as np
import pytest

from l3loc.io.npz import read_l3_npz
from l3loc.levels import LEVELS
from l3loc.mip import mip
from l3loc.synth.anatomy import plan_case
from l3loc.synth.config import PRESETS, SynthConfig
from l3loc.synth.painter import Painter, Texture, overlap_fraction
from l3loc.synth.acquisition import blur_inplane
from l3loc.synth.phantom import geometry, render_volume
from l3loc.synth.writers import ANNOTATOR_SD_MM, annotator_rows, generate_dataset

# 1 mm slices on a coarse 3 mm in-plane grid: anatomy is resolved along z, a case renders fast
THIN = replace(PRESETS["tiny"], thickness_mm={1.0: 1.0}, inplane_mm=(3.0, 3.0), matrix=128,
               fov_rates={"abdomen": 1.0}, osteoporosis_rate=0.0)
#: The same with everything a real scan adds around the spine switched on (excretory contrast,
#: oral contrast, gantry tilt, a tight crop), in another style: the ground truth must still hold
SCENE = replace(THIN, contrast_rate=1.0, phase_rates={"excretory": 1.0}, oral_contrast_rate=1.0,
                tilt_rate=1.0, crop_rate=1.0, style="sharp")
#: The plain case with a spine of the held-out anatomy family (scattered level sizes, lordosis)
VARIED = replace(THIN, anatomy="varied")


def _first(config: SynthConfig, want, seed: int = 0):
    """First case index of ``seed`` whose plan satisfies ``want``."""
    return next(plan_case(seed, i, config) for i in range(500) if want(plan_case(seed, i, config)))


# --- small pieces, by hand ------------------------------------------------------------------

def test_overlap_fraction_hand_worked():
    # a 5 mm slice centred at z=2.5 sees [0, 5]; the shape spans [2, 10]: 3 of 5 mm -> 0.6
    assert overlap_fraction(2.0, 10.0, np.array([2.5]), 5.0)[0] == pytest.approx(0.6)
    assert overlap_fraction(2.0, 10.0, np.array([6.0]), 1.0)[0] == pytest.approx(1.0)
    assert overlap_fraction(2.0, 10.0, np.array([11.0]), 1.0)[0] == pytest.approx(0.0)


def test_painter_ellipse_area_and_partial_volume():
    x = np.arange(-50, 51, 1.0)               # 1 mm pixels
    hu = np.full((3, x.size, x.size), 0, dtype=np.int16)
    P = Painter(hu, slice_z_mm=np.array([10.0, 5.0, 0.0]), thickness_mm=5.0, x_mm=x, y_mm=x)
    # z extent [-100, 7.5]: slices at z=5 and 0 fully inside, slice at 10 ([7.5, 12.5]) not at all
    P.ellipse(-100.0, 7.5, 0.0, 0.0, 20.0, 10.0, 100)
    assert (hu[0] == 0).all()
    assert (hu[1] == 100).sum() == pytest.approx(np.pi * 20 * 10, rel=0.03)
    # half of the top slice ([7.5, 12.5]) inside [5, 10]: blend 0 and 200 -> 100
    P.ellipse(5.0, 10.0, 0.0, 0.0, 5.0, 5.0, 200)
    assert hu[0, 50, 50] == 100


def test_tube_with_a_larger_z_radius_has_a_tall_flat_cross_section():
    """A level tube along x with radius 3 mm and half-height 6 mm (a rib shaft): on 1 mm slices
    and pixels its cross-section is 12 mm high and 6 mm thick, with twice the area of the round
    tube of radius 3 mm."""
    x = np.arange(-20, 21, 1.0)
    z = np.arange(15.0, -15.5, -1.0)

    def section(z_radius):
        hu = np.zeros((z.size, x.size, x.size), dtype=np.int16)
        P = Painter(hu, slice_z_mm=z, thickness_mm=1.0, x_mm=x, y_mm=x)
        P.tube([[-15.0, 0.0, 0.0], [15.0, 0.0, 0.0]], 3.0, 1000, z_radius_mm=z_radius)
        return hu[:, :, 20]                           # the plane x = 0: slices z, rows y

    flat, round_ = section(6.0), section(None)
    zs, ys = np.nonzero(flat >= 500)
    assert z[zs].max() - z[zs].min() + 1 == pytest.approx(12, abs=1)
    assert x[ys].max() - x[ys].min() + 1 == pytest.approx(6, abs=1)
    assert flat.sum() / round_.sum() == pytest.approx(2.0, rel=0.05)


def test_slices_thicker_than_their_spacing_each_see_their_share_of_a_thin_plate():
    """An overlapping reconstruction (4 mm slices every 2 mm): a 2 mm plate at z in [-1, 1]
    shows in three slices, half in the one centred on it and a quarter in each neighbour (a
    contiguous 2 mm reconstruction shows it whole in one); the same for a plate made of a
    tube's spheroids (the other painting path)."""
    x = np.arange(-20, 21, 1.0)
    z = np.arange(8.0, -8.5, -2.0)                 # 8, 6, ..., -8: the slice at 0 is index 4

    def column(thickness, paint):
        hu = np.zeros((z.size, x.size, x.size), dtype=np.int16)
        paint(Painter(hu, slice_z_mm=z, thickness_mm=thickness, x_mm=x, y_mm=x))
        return hu[:, 20, 20]

    def plate(P):
        P.ellipse(-1.0, 1.0, 0.0, 0.0, 15.0, 15.0, 1000)

    def flat_tube(P):              # a level spheroid tube 12 mm wide and 2 mm high along x
        P.tube([[-15.0, 0.0, 0.0], [15.0, 0.0, 0.0]], 6.0, 1000, z_radius_mm=1.0)

    np.testing.assert_array_equal(column(2.0, plate), [0, 0, 0, 0, 1000, 0, 0, 0, 0])
    np.testing.assert_array_equal(column(4.0, plate), [0, 0, 0, 250, 500, 250, 0, 0, 0])
    contiguous, overlapping = column(2.0, flat_tube), column(4.0, flat_tube)
    assert contiguous[4] == 1000 and contiguous.sum() == 1000
    np.testing.assert_array_equal(overlapping, [0, 0, 0, 250, 500, 250, 0, 0, 0])


def test_texture_is_periodic_floored_and_scales_the_painted_value():
    tex = Texture.make(np.random.default_rng(0), size=8, cell_mm=2.0, floor=-0.4).moved(np.random.default_rng(1), 0.5)
    assert tex.table.min() == pytest.approx(-0.4)
    z, y, x = np.array([0.3, 5.1]), np.array([1.0, 7.7, -3.0]), np.array([2.2])
    f = tex.factor_grid(z, y, x)
    # one period is 8 cells of 2 mm: the field repeats every 16 mm along every axis
    np.testing.assert_array_equal(f, tex.factor_grid(z + 16, y - 32, x + 16))
    assert f.min() >= 1 + 0.5 * -0.4 - 1e-6
    np.testing.assert_array_equal(tex.factor_points(z[[1]], y[[2]], x), f[1, 2])
    # a textured ellipse paints hu * factor voxel by voxel (one 1 mm slice fully inside)
    xs = np.arange(-10, 11, 1.0)
    hu = np.zeros((1, xs.size, xs.size), dtype=np.int16)
    P = Painter(hu, slice_z_mm=np.array([0.0]), thickness_mm=1.0, x_mm=xs, y_mm=xs)
    P.ellipse(-5.0, 5.0, 0.0, 0.0, 8.0, 8.0, 400, texture=tex)
    want = np.rint(400 * tex.factor_grid(np.array([0.0]), xs, xs))[0]
    assert hu[0, 10, 10] == want[10, 10] and hu[0, 10, 17] == want[10, 17]
    assert hu[0, 0, 0] == 0 and len(np.unique(hu[0, 5:16, 5:16])) > 5


def test_inplane_blur_is_the_binomial_kernel_inside_its_box():
    hu = np.zeros((2, 9, 9), dtype=np.int16)
    hu[:, 4, 4] = 1600
    hu[:, 1, 8] = 1600                       # outside the box: untouched
    blur_inplane(hu, rows=(2, 7), cols=(2, 7))
    # [1, 2, 1] / 4 along each axis: 1600 -> 400 centre, 200 edge neighbours, 100 corners
    np.testing.assert_array_equal(hu[0, 3:6, 3:6], [[100, 200, 100], [200, 400, 200], [100, 200, 100]])
    assert hu[0, 1, 8] == 1600 and hu.sum() == 2 * (1600 + 1600)


def test_vertebral_body_in_a_projection_has_bright_endplates_and_a_darker_core(monkeypatch):
    # 0.625 mm slices resolve the 1.2 mm endplates, 1.5 mm pixels the body in plane
    cfg = replace(THIN, thickness_mm={0.625: 1.0}, inplane_mm=(1.5, 1.5))
    plan = _first(cfg, lambda p: p.l3_in_fov)
    # the anatomy under the standard kernel (a soft kernel blurs the 1.2 mm plates; kernels are
    # tested in test_synth_scene.py)
    from l3loc.synth import phantom
    standard = phantom.kernel_inplane
    monkeypatch.setattr(phantom, "kernel_inplane",
                        lambda hu, rows, cols, kernel: standard(hu, rows, cols, "standard"))
    hu = render_volume(plan)
    g, l3 = geometry(plan), plan.vertebra("L3")
    z = plan.slice_z_mm
    _, dy, dx = plan.spacing_mm
    rows, cols = plan.shape[1:]
    inside = np.flatnonzero((z > l3.z_bottom) & (z < l3.z_top))
    # a frontal projection of the body alone: max over y from in front of its anterior wall to
    # 80 % of its depth (no posterior wall, no arch), then the median over its middle half of
    # columns
    proj = {}
    for i in inside:
        yy = (np.arange(rows) - (rows - 1) / 2) * dy - g.sy(z[i])
        xx = (np.arange(cols) - (cols - 1) / 2) * dx - g.sx(z[i])
        ray = hu[i][(yy > -l3.b - 3) & (yy < 0.8 * l3.b)].max(axis=0)
        proj[i] = float(np.median(ray[np.abs(xx) < 0.5 * l3.a]))
    centre = proj[int(inside[np.argmin(abs(z[inside] - l3.z_centre))])]
    # endplates (0.75 x cortical bone, rays run inside them) against the middle (a ray crosses
    # the thin anterior wall, 0.4 x cortical bone, and cancellous bone): at least ~1.7x by hand
    # (young: 0.75 * 1150 * 1.8 vs 380 * 1.75; old: 0.75 * 870 * 1.8 vs 0.4 * 870 * 1.3);
    # 1.6-3.7 on seeds 0-7. With an untextured wall as dense as the endplates it was 1.04.
    for near in (l3.z_top, l3.z_bottom):
        plate = max(proj[i] for i in inside if abs(z[i] - near) < 1.5)
        assert plate > 1.3 * centre, (plate, centre)


# --- ground truth against the rendered anatomy -----------------------------------------------

@pytest.mark.parametrize("config", [THIN, SCENE, VARIED], ids=["plain", "scene", "varied"])
def test_l3_centre_lies_in_the_third_body_below_the_last_rib(config):
    plan = _first(config, lambda p: not p.ground_truth()["negative"] and p.n_lumbar == 5
                  and p.l3_in_fov and p.vertebra(f"T{p.n_rib_pairs}").z_top < p.z_top_mm)
    gt = plan.ground_truth()
    hu = render_volume(plan)
    g = geometry(plan)
    z = plan.slice_z_mm
    _, dy, dx = plan.spacing_mm
    rows, cols = plan.shape[1:]
    # HU along the spine's axis (the centre of the vertebral bodies), slice by slice
    col = np.rint(g.sx(z) / dx + (cols - 1) / 2).astype(int)
    row = np.rint(g.sy(z) / dy + (rows - 1) / 2).astype(int)
    # mean over 3 x 3 pixels (9 x 9 mm, inside any body) divides the noise (<= 30 HU) by 3
    axis_hu = np.mean([hu[np.arange(len(z)), row + i, col + j] for i in (-1, 0, 1) for j in (-1, 0, 1)], axis=0)
    bone = axis_hu > 110                      # cancellous bone >= 130 HU, discs 80 +- 8 HU
    # runs of bone = vertebral bodies (>= 5 mm: the noise is spatially correlated and can
    # lift a slice of disc over the threshold); count them down from the last rib-bearing one
    starts = np.flatnonzero(bone & ~np.r_[False, bone[:-1]])
    ends = np.flatnonzero(bone & ~np.r_[bone[1:], False])
    long = (ends - starts + 1) * plan.spacing_mm[0] >= 5.0
    starts, ends = starts[long], ends[long]
    last_rib = plan.vertebra(f"T{plan.n_rib_pairs}")
    i_last = int(np.argmin(abs(z - last_rib.z_centre)))
    k = next(j for j in range(len(starts)) if starts[j] <= i_last <= ends[j])
    l3_slice = gt["l3_slice"]
    assert starts[k + 3] <= l3_slice <= ends[k + 3]
    # and the ground truth's z-extent of L3 agrees with that run of bone to within a slice; on
    # the axis the bone begins ``cup`` mm inside the endplates' rims (their central hollow),
    # which the ground truth (rim to rim, as body heights are measured) leaves out
    top, bottom = gt["vertebrae_z_mm"]["L3"]
    cup = plan.vertebra("L3").cup
    assert abs((plan.z_first_mm - (top - cup)) / plan.spacing_mm[0] - starts[k + 3]) <= 1.5
    assert abs((plan.z_first_mm - (bottom + cup)) / plan.spacing_mm[0] - ends[k + 3]) <= 1.5
    # L3 = third vertebra after the last rib-bearing one in the plan's own order
    names = [v.name for v in plan.vertebrae]
    assert names[names.index(last_rib.name) + 3] == "L3"


@pytest.mark.parametrize("n_lumbar,n_ribs", [(6, 12), (4, 12), (5, 13), (5, 11)])
def test_variant_naming(n_lumbar, n_ribs):
    plan = _first(PRESETS["default"], lambda p: p.n_lumbar == n_lumbar and p.n_rib_pairs == n_ribs)
    names = [v.name for v in plan.vertebrae]
    assert names[:7] == [f"C{k}" for k in range(1, 8)]
    assert names[7 + n_ribs - 1] == f"T{n_ribs}" and plan.vertebra(f"T{n_ribs}").rib
    assert names[7 + n_ribs + 2] == "L3"
    assert names[-1] == "S" and names[-2] == f"L{n_lumbar}"
    # bodies stack without overlap, each above its disc
    tops = [plan.vertebra(n).z_top for n in names]
    bottoms = [plan.vertebra(n).z_bottom for n in names]
    assert all(b < t for t, b in zip(tops, bottoms))
    assert all(b_up > t_lo for b_up, t_lo in zip(bottoms[:-1], tops[1:]))


def test_negative_case_has_no_l3_in_its_field_of_view():
    plan = _first(PRESETS["tiny"], lambda p: p.fov_type == "chest_only")
    gt = plan.ground_truth()
    assert gt["negative"] and gt["l3_slice"] is None
    top, _ = gt["vertebrae_z_mm"]["L3"]
    last_slice_bottom = plan.z_first_mm - (plan.shape[0] - 0.5) * plan.spacing_mm[0]
    assert last_slice_bottom >= top


def test_every_positive_field_of_view_contains_l3_whole():
    for i in range(300):
        plan = plan_case(3, i)
        gt = plan.ground_truth()
        assert gt["negative"] == (plan.fov_type == "chest_only")
        if not gt["negative"]:
            l3 = plan.vertebra("L3")
            assert plan.slice_z_mm[-1] < l3.z_bottom and l3.z_top < plan.slice_z_mm[0]
            assert 0 <= gt["l3_slice"] <= plan.shape[0] - 1


# --- writers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, 3, seed=7, preset="tiny", workers=1, n_volumes=2, n_dicom=1, n_preview=2)
    return out


def test_npz_mips_equal_the_mips_of_the_written_volume(tiny_dataset):
    from l3loc.io.volume import read_volume

    ds, problems = read_l3_npz(tiny_dataset / "l3_dataset.npz")
    assert not problems and len(ds) == 3
    for i in range(2):
        vol = read_volume(tiny_dataset / "volumes" / f"{ds.names[i]}.nii.gz")
        assert np.array_equal(mip(vol.hu, "frontal", vol.spacing_mm), ds.images_f[i])
        assert np.array_equal(mip(vol.hu, "sagittal", vol.spacing_mm), ds.images_s[i])
    dicom = read_volume(tiny_dataset / "dicom" / ds.names[0])
    assert np.array_equal(mip(dicom.hu, "frontal", dicom.spacing_mm), ds.images_f[0])


def test_annotations_leave_out_levels_whose_centre_lies_outside_the_scan(tmp_path):
    """A level the scan only grazes (its body overlaps the last slice, its centre lies beyond)
    is present in the ground truth, but an annotation must name a slice of the scan: its z stays
    empty, so the annotation CSV of written phantoms reads back (it was refused before)."""
    from l3loc.io.annotations import annotation_to_canonical_row, read_annotations
    from l3loc.io.geometry import VolumeGeometry
    from l3loc.synth.writers import _write_annotations

    levels_z = {k: -10.0 * i for i, k in enumerate(LEVELS)}
    slices = {k: None for k in LEVELS}
    slices.update(T12=5.0, L1=9.0, L2=10.3)          # 10 slices: L2's centre beyond the last one
    gt = {"name": "case", "negative": True, "l3_z_mm": None, "transitional": False,
          "shape": [10, 4, 4], "levels_z_mm": levels_z, "level_slices": slices}
    volume = tmp_path / "case.nii.gz"
    volume.write_bytes(b"")
    _write_annotations(tmp_path, [{"gt": gt, "files": {"volume": str(volume)}}])
    row = read_annotations(tmp_path / "annotations.csv").iloc[0]
    assert row["l1_z_mm"] == levels_z["L1"] and math.isnan(row["l2_z_mm"])
    geometry = VolumeGeometry(n_slices=10, file_si_axis=2, file_si_reversed=True, z_first_mm=50.0,
                              slice_spacing_mm=1.0)
    assert math.isnan(annotation_to_canonical_row(row, geometry, "L2"))


def test_written_labels_match_the_ground_truth(tiny_dataset):
    import json

    from l3loc.io.annotations import read_annotations

    ds, _ = read_l3_npz(tiny_dataset / "l3_dataset.npz")
    gts = json.loads((tiny_dataset / "ground_truth.json").read_text())
    for i, g in enumerate(gts):
        assert g["name"] == ds.names[i] and g["negative"] == bool(ds.negative[i])
        assert ds.spacings[i, 2] == g["spacing_mm"][0] and ds.spacings[i, 0] == g["spacing_mm"][2]
        if not g["negative"]:
            # annotators within 5 SD of the truth (mm), the truth stored exactly
            for rows in ds.ydata.values():
                assert abs(rows[i] - g["l3_slice"]) * g["spacing_mm"][0] < 5 * ANNOTATOR_SD_MM
            assert ds.extra["l3_slice_true"][i] == g["l3_slice"]
            # file index of the NIfTI: write_volume stores k = 0 as the most inferior slice
            if "l3_file_slice" in g:
                assert g["l3_file_slice"] == pytest.approx(g["shape"][0] - 1 - g["l3_slice"])
    ann = read_annotations(tiny_dataset / "annotations.csv")
    assert len(ann) == 3   # two volumes + one DICOM series
    by_name = {g["name"]: g for g in gts}
    for _, row in ann.iterrows():
        g = by_name[row["name"].removesuffix("_dicom")]
        assert bool(row["negative"]) == g["negative"]
        if not g["negative"]:
            assert row["l3_z_mm"] == pytest.approx(g["l3_z_mm"])
    assert (tiny_dataset / "preview.png").stat().st_size > 0
    # every level: npz rows = the ground truth's slices, L3 = the stored truth, CSV z = world z
    levels = ds.extra["level_rows"]
    for i, g in enumerate(gts):
        want = [np.nan if g["level_slices"].get(k) is None else g["level_slices"][k] for k in LEVELS]
        np.testing.assert_array_equal(levels[i], want)
        np.testing.assert_array_equal(levels[i, 3], ds.extra["l3_slice_true"][i])
        assert ds.extra["transitional"][i] == (g["n_lumbar"] != 5)
    np.testing.assert_array_equal(ds.level_rows()[:, 3], ds.label_rows())
    # the sagittal slab the MIPs were made with, for the cache to check against the config
    assert (ds.extra["sagittal_slab_mm"] == 20.0).all()
    for _, row in ann.iterrows():
        g = by_name[row["name"].removesuffix("_dicom")]
        for k in ("T12", "L1", "S1"):
            if g["level_slices"][k] is None:
                assert math.isnan(row[f"{k.lower()}_z_mm"])
            else:
                assert row[f"{k.lower()}_z_mm"] == pytest.approx(g["levels_z_mm"][k])


@pytest.mark.parametrize("n_lumbar,n_ribs", [(5, 12), (4, 12), (6, 12), (5, 11), (5, 13)])
def test_levels_are_counted_from_the_last_rib(n_lumbar, n_ribs):
    plan = _first(PRESETS["default"], lambda p: p.n_lumbar == n_lumbar and p.n_rib_pairs == n_ribs
                  and p.fov_type == "head_to_thigh")
    gt = plan.ground_truth()
    z = gt["levels_z_mm"]
    assert gt["transitional"] == (n_lumbar != 5)
    # T12 is the last rib-bearing vertebra whatever its anatomical number
    assert z["T12"] == pytest.approx(np.mean(gt["vertebrae_z_mm"][f"T{n_ribs}"]))
    assert z["S1"] == pytest.approx(gt["vertebrae_z_mm"]["S"][0])
    assert ("L5" in z) == (n_lumbar >= 5)
    present = [k for k in LEVELS if k in z]
    assert all(z[a] > z[b] for a, b in zip(present[:-1], present[1:]))   # cranial first
    rows = [gt["level_slices"][k] for k in present]
    assert all(r is not None for r in rows) and rows == sorted(rows)
    assert gt["level_slices"]["L3"] == gt["l3_slice"]


def test_refuses_to_overwrite(tiny_dataset):
    with pytest.raises(FileExistsError):
        generate_dataset(tiny_dataset, 1, preset="tiny", workers=1)


# --- determinism and rates -------------------------------------------------------------------

def test_deterministic_per_seed_and_independent_of_workers(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="l3loc"):
        a = generate_dataset(tmp_path / "a", 3, seed=11, preset="tiny", workers=1)
    # without a progress bar (a log file), a line at every tenth of the cases
    lines = [m for m in caplog.messages if " cases in " in m]
    assert [m.split(" cases in ")[0] for m in lines] == ["[SYNTH] 1/3", "[SYNTH] 2/3"]
    assert all("min left" in m for m in lines)
    b = generate_dataset(tmp_path / "b", 3, seed=11, preset="tiny", workers=2)
    da, _ = read_l3_npz(a)
    db, _ = read_l3_npz(b)
    assert da.names == db.names
    for x, y in zip(da.images_f + da.images_s, db.images_f + db.images_s):
        assert np.array_equal(x, y)
    for k in da.ydata:
        np.testing.assert_array_equal(da.ydata[k], db.ydata[k])
    other = plan_case(12, 0, PRESETS["tiny"]).ground_truth()
    assert other != plan_case(11, 0, PRESETS["tiny"]).ground_truth()


def test_unusual_spines_sets_the_share_of_transitional_spines_and_rib_counts():
    from l3loc.synth.config import with_unusual_spines

    config = with_unusual_spines(PRESETS["default"], 0.3)
    assert (config.lumbar_rates, config.rib_rates) == ({4: 0.15, 5: 0.7, 6: 0.15}, {11: 0.15, 12: 0.7, 13: 0.15})
    assert config.fov_rates == PRESETS["default"].fov_rates          # nothing else changes
    plans = [plan_case(7, i, config) for i in range(1000)]
    transitional = np.mean([p.n_lumbar != 5 for p in plans])
    other_ribs = np.mean([p.n_rib_pairs != 12 for p in plans])
    # 0.3 each, binomial sd 0.0145: 4 sd either way; the default rates (0.10, 0.09) lie far below
    assert abs(transitional - 0.3) < 0.06 and abs(other_ribs - 0.3) < 0.06
    assert {p.n_lumbar for p in plans} == {4, 5, 6} and {p.n_rib_pairs for p in plans} == {11, 12, 13}


def test_variants_and_fields_of_view_occur_at_the_configured_rates():
    config = PRESETS["default"]
    n = 4000
    plans = [plan_case(5, i, config) for i in range(n)]

    def check(values, rates):
        for key, p in rates.items():
            count = sum(v == key for v in values)
            # binomial: within 4 standard deviations of n * p
            assert abs(count - n * p) <= 4 * np.sqrt(n * p * (1 - p)) + 1, (key, count, n * p)

    check([p.fov_type for p in plans], config.fov_rates)
    check([p.n_lumbar for p in plans], config.lumbar_rates)
    check([p.n_rib_pairs for p in plans], config.rib_rates)
    check([p.short_12th_rib for p in plans], {True: config.short_rib_rate})
    check([p.contrast for p in plans], {True: config.contrast_rate})
    check([p.metal for p in plans], config.metal_rates)
    check([p.spacing_mm[0] for p in plans], config.thickness_mm)
    check([p.cropped for p in plans], {True: config.crop_rate})
    check([p.tilt_deg != 0 for p in plans], {True: config.tilt_rate})
    with_contrast = [p for p in plans if p.contrast]
    assert all((p.contrast_phase == "none") == (not p.contrast) for p in plans)
    for phase, rate in config.phase_rates.items():
        count = sum(p.contrast_phase == phase for p in with_contrast)
        assert abs(count - len(with_contrast) * rate) <= 4 * np.sqrt(len(with_contrast) * rate * (1 - rate)) + 1
    inplane = np.array([p.spacing_mm[2] for p in plans if not p.cropped])
    assert inplane.min() >= config.inplane_mm[0] and inplane.max() <= config.inplane_mm[1]
    # a tight crop: a 280-380 mm field of view on the same matrix
    fov = np.array([p.spacing_mm[2] * p.shape[2] for p in plans if p.cropped])
    assert fov.min() >= 150 and fov.max() <= 381


def test_abdominal_scans_without_the_pelvis_end_anywhere_between_l3_and_the_sacrum():
    # a net must not learn how far under L3 a scan without the sacrum stops: real liver and
    # upper-abdomen protocols stop through the kidneys, at the crests or just above the pelvis
    config = replace(PRESETS["default"], fov_rates={"abdomen": 1.0})
    gaps, room = [], []
    for i in range(400):
        p = plan_case(3, i, config)
        bottom = p.z_top_mm - (p.shape[0] - 1) * p.spacing_mm[0]   # centre of the last slice
        if bottom <= 0:            # down to the pelvis
            continue
        l3 = p.vertebra("L3")
        assert p.l3_in_fov and bottom < l3.z_bottom
        gaps.append(l3.z_bottom - bottom)
        room.append(l3.z_bottom)   # L3's lower endplate above the top of the sacrum (z = 0)
    gaps, room = np.array(gaps), np.array(room)
    assert 150 <= len(gaps) <= 250   # half of the abdominal scans
    assert gaps.min() < 10 and (gaps > 45).mean() > 0.25   # the old scans all ended <= 40 mm under L3
    assert (gaps > 0.8 * room).mean() > 0.1                # some stop just above the sacrum


def test_abdominal_scans_start_anywhere_from_the_dome_down_to_l2_and_nothing_else_moves():
    # a net must not learn which vertebra comes first from where a scan starts: the real example
    # CT starts in T11, lumbar protocols in L1 or L2; the phantoms' abdominal scans once all
    # started above the dome (T7-T10), later never below L1
    config = replace(PRESETS["default"], fov_rates={"abdomen": 1.0})
    high = replace(config, low_top_rate=0.0)
    first, low = [], 0
    for i in range(200):
        p, q = plan_case(3, i, config), plan_case(3, i, high)
        dome_top = q.z_top_mm                 # the usual top: 0-40 mm above the dome
        if p.z_top_mm != q.z_top_mm:
            low += 1
            assert p.vertebra("L3").z_top + 10 <= p.z_top_mm < dome_top
            assert p.l3_in_fov
        # the same patient and the same bottom slice: only where the scan starts moved
        assert [v.z_centre for v in p.vertebrae] == [v.z_centre for v in q.vertebrae]
        assert p.slice_z_mm[-1] == pytest.approx(q.slice_z_mm[-1], abs=p.spacing_mm[0])
        first.append(next(v.name for v in p.vertebrae if v.z_bottom <= p.z_top_mm))
    assert 70 <= low <= 130                   # half of them (low_top_rate 0.5)
    # the first vertebra below the top slice ranges from the mid-thorax to L2, never L3
    assert {"T8", "T12", "L1", "L2"} <= set(first) and "L3" not in first


def test_annotators_differ_by_a_median_of_about_1_mm():
    gt = {"negative": False, "l3_slice": 50.0, "spacing_mm": [2.5, 0.8, 0.8]}
    diffs = [abs(r["annotator_1"] - r["annotator_2"]) * 2.5
             for r in (annotator_rows(gt, 0, i) for i in range(2000))]
    assert np.median(diffs) == pytest.approx(1.0, abs=0.1)
    neg = annotator_rows({"negative": True, "spacing_mm": [2.5, 1, 1]}, 0, 0)
    assert np.isnan(neg["annotator_1"]) and np.isnan(neg["annotator_2"])
