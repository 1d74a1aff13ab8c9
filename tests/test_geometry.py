"""Tests for l3loc.io.geometry: slice geometry and matching a file's voxel axes to canonical ones."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from l3loc.io.geometry import VolumeGeometry, axis_assignment


def test_geometry_hand_worked():
    g = VolumeGeometry(n_slices=10, file_si_axis=2, file_si_reversed=True, z_first_mm=50.0,
                       slice_spacing_mm=2.0)
    assert g.file_index(0) == 9.0 and g.file_index(2.5) == 6.5
    assert g.canonical_index(9) == 0.0
    assert g.z_mm(3) == 44.0                     # 50 - 3 * 2
    assert g.canonical_from_z(41.0) == 4.5       # (50 - 41) / 2
    assert g.file_index_from_z(41.0) == 4.5      # 9 - 4.5
    np.testing.assert_array_equal(g.z_mm(np.array([0, 1, 9])), [50.0, 48.0, 32.0])
    np.testing.assert_array_equal(g.file_index(np.array([0.0, 9.0])), [9.0, 0.0])
    assert isinstance(g.z_mm(1), float)


def test_geometry_not_reversed_is_identity_in_index():
    g = VolumeGeometry(n_slices=5, file_si_axis=1, file_si_reversed=False, z_first_mm=-34.2,
                       slice_spacing_mm=1.5)
    assert g.file_index(3.25) == 3.25
    assert g.z_mm(2) == pytest.approx(-37.2)


def test_geometry_dict_round_trip_through_json():
    g = VolumeGeometry(n_slices=7, file_si_axis=0, file_si_reversed=True, z_first_mm=12.25,
                       slice_spacing_mm=0.625)
    assert VolumeGeometry.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    with pytest.raises(ValueError, match="keys"):
        VolumeGeometry.from_dict({"n_slices": 7})


@pytest.mark.parametrize("kwargs", [dict(n_slices=0), dict(file_si_axis=3), dict(slice_spacing_mm=0.0),
                                    dict(slice_spacing_mm=-1.0), dict(z_first_mm=math.nan)])
def test_geometry_rejects_bad_fields(kwargs):
    base = dict(n_slices=4, file_si_axis=2, file_si_reversed=False, z_first_mm=0.0, slice_spacing_mm=1.0)
    with pytest.raises(ValueError):
        VolumeGeometry(**{**base, **kwargs})


def test_axis_assignment_pir():
    # PIR: i -> +y (posterior), j -> -z (inferior), k -> -x (right); columns of the matrix
    direction = (0, 0, -1, 1, 0, 0, 0, -1, 0)
    file_axis, flip, oblique = axis_assignment(direction)
    assert file_axis == (1, 0, 2)          # slices = j, rows = i, cols = k
    assert flip == (False, False, True)    # k runs right-ward, canonical columns run left-ward
    assert oblique == 0.0


# ------------------------------------------------------------------------------ round trips
