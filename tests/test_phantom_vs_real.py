"""benchmarks/phantom_vs_real.py --thick-mm: a volume made into thick slabs keeps its L3 and
body positions on the slab grid (like against like: real scans and their own phantoms)."""
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

_bench = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(_bench))
_spec = importlib.util.spec_from_file_location("phantom_vs_real", _bench / "phantom_vs_real.py")
phantom_vs_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(phantom_vs_real)


def test_thickened_volume_keeps_the_marked_slice_on_the_slab_grid():
    # 20 slices of 1 mm; slice 7 alone is bright: in 5 mm slabs it lies in slab 1
    # (7.5 mm below the top edge: slab 1 spans 5-10 mm), a fifth of its value
    hu = np.zeros((20, 4, 4), np.int16)
    hu[7] = 1000
    vol = SimpleNamespace(hu=hu, spacing_mm=(1.0, 0.8, 0.8), geometry="kept")
    thick, l3, bodies = phantom_vs_real.thickened(vol, 7.0, {"L3": (5.0, 9.0)}, 5.0)
    assert thick.hu.shape == (4, 4, 4) and thick.spacing_mm == (5.0, 0.8, 0.8)
    assert thick.hu[:, 0, 0].tolist() == [0, 200, 0, 0]
    assert l3 == 1.0 and np.allclose(bodies["L3"], (0.6, 1.4))
    # no thicker slabs asked for (or not thicker than the slices): the volume itself
    assert phantom_vs_real.thickened(vol, 7.0, {}, None)[0] is vol
    assert phantom_vs_real.thickened(vol, 7.0, {}, 1.0)[0] is vol


def test_acquisition_sets_draw_their_family_s_voxels(tmp_path):
    """benchmarks/acquisition_sets.py: the coarse family is 4.4 mm slices of 4-5 mm pixels (the
    draw rounded to whole rendered pixels), every case with L3 (two cases of the real generator)."""
    spec = importlib.util.spec_from_file_location("acquisition_sets", _bench / "acquisition_sets.py")
    acquisition_sets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(acquisition_sets)
    assert acquisition_sets.main(["--family", "coarse", "--out", str(tmp_path), "--n", "2", "--workers", "1"]) == 0
    d = np.load(tmp_path / "l3_dataset.npz", allow_pickle=True)
    spacing = np.asarray(d["spacings"], dtype=float)
    assert np.allclose(spacing[:, 2], 4.4) and (spacing[:, :2] >= 3.5).all() and (spacing[:, :2] <= 5.5).all()
    assert not np.asarray(d["negative"]).any()


def test_arch_body_is_the_posterior_columns_over_the_bodies():
    """A sagittal image (2 mm pixels) whose columns behind the canvas centre read 0.3 and in front
    0.6: arch/body 0.5, whatever lies beyond the measured columns."""
    cfg = SimpleNamespace(spacing_mm=2.0)
    img = np.zeros((100, 64), np.float32)
    x = (np.arange(64) - 32) * 2.0
    img[:, (x >= -40) & (x <= -5)] = 0.6
    img[:, (x >= 15) & (x <= 50)] = 0.3
    img[:, x > 50] = 1.0                      # the back's skin and table: not measured
    assert phantom_vs_real.arch_body(img, 50.0, cfg) == np.float32(0.3) / np.float32(0.6)


def test_coarsened_volume_is_slabs_and_binned_pixels_of_about_the_size_asked():
    """--coarse-mm 4.4 on 1.5 mm pixels and 1 mm slices: slabs of 4.4 mm, pixels binned 3 x 3
    (4.5 mm), L3 and the bodies carried to the slab grid as --thick-mm does."""
    hu = np.zeros((22, 12, 12), np.int16)
    hu[:, 3:6, 3:6] = 900                     # one output pixel's worth of bone, in every slice
    vol = SimpleNamespace(hu=hu, spacing_mm=(1.0, 1.5, 1.5), geometry="kept")
    coarse, l3, bodies = phantom_vs_real.coarsened(vol, 11.0, {"L3": (8.0, 14.0)}, 4.4)
    thick, l3_t, bodies_t = phantom_vs_real.thickened(vol, 11.0, {"L3": (8.0, 14.0)}, 4.4)
    assert coarse.hu.shape == (thick.hu.shape[0], 4, 4) and coarse.spacing_mm == (4.4, 4.5, 4.5)
    assert l3 == l3_t and bodies == bodies_t
    assert 0 < coarse.hu[2, 1, 1] < 900 and coarse.hu[2, 3, 3] < coarse.hu[2, 1, 1]   # smoothed, binned
    assert phantom_vs_real.coarsened(vol, 11.0, {}, None)[0] is vol
