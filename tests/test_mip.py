"""Tests for l3loc.mip: projections and the spine's left-right centre on tiny volumes and the real CT."""
from __future__ import annotations

import numpy as np
import pytest
from test_preprocess import _air, real_ct  # noqa: F401 (real_ct is a fixture)

from l3loc.io.volume import read_volume
from l3loc.mip import mip, sagittal_slab_cols, spine_lr_centre_px


def test_mip_bright_voxel_frontal_and_full_sagittal():
    vol = _air((5, 6, 7))
    vol[2, 3, 4] = 1000.0  # slice 2, row (A->P) 3, col (R->L) 4
    front = mip(vol, "frontal")
    sag = mip(vol, "sagittal", sagittal_slab_mm=None)
    assert front.shape == (5, 7) and sag.shape == (5, 6)
    assert front[2, 4] == 1000.0 and np.argmax(front) == np.ravel_multi_index((2, 4), (5, 7))
    assert sag[2, 3] == 1000.0 and np.argmax(sag) == np.ravel_multi_index((2, 3), (5, 6))
    assert front.dtype == np.float32


def _phantom_body_and_spine():
    """Body box over cols 10..29 (centre 19.5) with a bone column over cols 22..24 (centre 23)."""
    vol = _air((4, 20, 40))
    vol[:, 2:18, 10:30] = 0.0  # soft tissue
    vol[:, 12:16, 22:25] = 700.0  # "spine", off the body centre by 3.5 columns
    return vol


def test_spine_centre_moves_from_body_centre_onto_bone():
    vol = _phantom_body_and_spine()
    assert spine_lr_centre_px(vol, (1.0, 1.0, 1.0)) == pytest.approx(23.0)
    no_bone = np.where(vol > 500, 0.0, vol)
    assert spine_lr_centre_px(no_bone, (1.0, 1.0, 1.0)) == pytest.approx(19.5)
    assert spine_lr_centre_px(_air((2, 3, 9)), (1.0, 1.0, 1.0)) == pytest.approx(4.0)


def test_sagittal_slab_excludes_lateral_bone_and_scales_with_spacing():
    vol = _phantom_body_and_spine()
    vol[1, 5, 11] = 1500.0  # a "rib" 12 columns right of the spine
    # +-2 mm at 1 mm columns -> cols 21..25; at 0.5 mm columns -> +-4 cols -> 19..27
    assert sagittal_slab_cols(vol, (1.0, 1.0, 1.0), 2.0) == (21, 26)
    assert sagittal_slab_cols(vol, (1.0, 1.0, 0.5), 2.0) == (19, 28)
    sag = mip(vol, "sagittal", (1.0, 1.0, 1.0), sagittal_slab_mm=2.0)
    assert sag[1, 5] == 0.0  # rib left out, soft tissue remains
    assert sag[1, 13] == 700.0
    full = mip(vol, "sagittal", (1.0, 1.0, 1.0), sagittal_slab_mm=None)
    assert full[1, 5] == 1500.0


def test_mip_rejects_bad_input():
    with pytest.raises(ValueError, match="view"):
        mip(_air((2, 2, 2)), "axial")
    with pytest.raises(ValueError, match="3-D"):
        mip(_air((2, 2)), "frontal")
    with pytest.raises(ValueError, match="spacing"):
        mip(_air((2, 2, 2)), "frontal", spacing_mm=(1.0, 0.0, 1.0))


def test_spine_centre_on_real_ct_matches_vertebra_labels(real_ct):
    """The spine's centre found from HU alone vs the centroid of the vertebra label map."""
    vol = read_volume(real_ct / "ct.nii.gz").hu
    labels = read_volume(real_ct / "spine_labels_verse_convention.nii.gz").hu
    truth_col = np.nonzero(labels > 0)[2].mean()  # 62.42 (3 mm columns)
    found = spine_lr_centre_px(vol, (3.0, 3.0, 3.0))
    assert abs(found - truth_col) < 1.0  # within one 3 mm column
