"""Tests for l3loc.scan_inputs: folders of scans, unique case names, inputs that are not there."""
import pytest
from conftest import MARKER_SPACING as SPACING, marker_phantom as phantom  # noqa: E402

from l3loc.errors import InputError
from l3loc.io.volume import write_volume
from l3loc.scan_inputs import list_inputs


def test_duplicate_names_get_suffixes(tmp_path):
    for sub in ("x", "y"):
        write_volume(tmp_path / sub / "ct.nii.gz", phantom(), SPACING)
    assert [s.name for s in list_inputs([tmp_path])] == ["ct", "ct_2"]
    with pytest.raises(InputError, match="does not exist"):
        list_inputs([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no scans found"):
        list_inputs([tmp_path / "empty"])
