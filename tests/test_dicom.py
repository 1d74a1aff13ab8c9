"""Tests for l3loc.io.dicom: writing a series and reading it back (one series or several in a folder)."""
from __future__ import annotations

import locale

import numpy as np
import pytest
import SimpleITK as sitk
from test_volume import SPACING, Z_FIRST, _phantom

from l3loc.errors import InputError
from l3loc.io.dicom import write_dicom_series
from l3loc.io.geometry import VolumeGeometry
from l3loc.io.volume import read_volume


def test_dicom_round_trip_with_rescale(tmp_path):
    # slope 0.5 and intercept -1024: HU on the 0.5 grid come back exactly, only if both are applied
    hu = _phantom().astype(np.float32) / 2
    files = write_dicom_series(tmp_path / "series", hu, SPACING, z_first_mm=Z_FIRST,
                               rescale_slope=0.5, rescale_intercept=-1024.0, series_uid="1.2.3.4.5")
    vol = read_volume(tmp_path / "series")
    assert vol.hu.dtype == np.float32
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.spacing_mm == SPACING
    assert vol.geometry == VolumeGeometry(n_slices=4, file_si_axis=2, file_si_reversed=True,
                                          z_first_mm=Z_FIRST, slice_spacing_mm=2.5)
    assert vol.meta["series_uid"] == "1.2.3.4.5" and vol.meta["format"] == "dicom"
    # dicom_files in canonical order: instance 1 is the top slice, z falls by 2.5 mm per file
    assert vol.meta["dicom_files"] == [str(f) for f in files]
    reader = sitk.ImageFileReader()
    z = []
    for f in vol.meta["dicom_files"]:
        reader.SetFileName(f)
        reader.ReadImageInformation()
        z.append(float(reader.GetMetaData("0020|0032").split("\\")[2]))
        assert reader.GetMetaData("0008|0060").strip() == "CT"
        assert float(reader.GetMetaData("0028|1053")) == 0.5
        assert float(reader.GetMetaData("0028|1052")) == -1024.0
    assert z == [100.5, 98.0, 95.5, 93.0]


def test_an_overlapping_series_states_its_thickness_apart_from_its_spacing(tmp_path):
    """5 mm slices every 2.5 mm: SliceThickness 5, and the volume read back on the 2.5 mm
    positions (the slices' spacing, not their thickness)."""
    write_dicom_series(tmp_path / "s", _phantom(), SPACING, slice_thickness_mm=5.0)
    write_dicom_series(tmp_path / "c", _phantom(), SPACING)
    reader = sitk.ImageFileReader()
    for folder, thickness in (("s", 5.0), ("c", 2.5)):
        vol = read_volume(tmp_path / folder)
        assert vol.spacing_mm == SPACING
        reader.SetFileName(vol.meta["dicom_files"][0])
        reader.ReadImageInformation()
        assert float(reader.GetMetaData("0018|0050")) == thickness


def test_dicom_integer_hu_reads_as_int16(tmp_path):
    hu = _phantom()
    write_dicom_series(tmp_path / "s", hu, SPACING)
    vol = read_volume(tmp_path / "s")
    assert vol.hu.dtype == np.int16
    np.testing.assert_array_equal(vol.hu, hu)


def test_dicom_two_series_in_one_folder(tmp_path):
    folder = tmp_path / "study"
    small, big = _phantom((3, 5, 6)), _phantom((5, 5, 6)) + 7
    write_dicom_series(folder, small, SPACING, series_uid="1.2.3.1")
    write_dicom_series(folder, big, SPACING, series_uid="1.2.3.2")
    with pytest.warns(UserWarning, match="2 DICOM series"):
        vol = read_volume(folder)
    np.testing.assert_array_equal(vol.hu, big)           # default: the series with most slices
    assert vol.meta["other_series_uids"] == ["1.2.3.1"]
    np.testing.assert_array_equal(read_volume(folder, series_uid="1.2.3.1").hu, small)
    with pytest.raises(InputError, match=r"1\.2\.3\.1 \(3 files\).*1\.2\.3\.2 \(5 files\)|"
                                         r"1\.2\.3\.2 \(5 files\).*1\.2\.3\.1 \(3 files\)"):
        read_volume(folder, series_uid="9.9.9")
    # one .dcm file stands for its own series
    one = sorted(folder.glob("*_0001.dcm"))
    uids = {read_volume(f).meta["series_uid"] for f in one}
    assert uids == {"1.2.3.1", "1.2.3.2"}


def test_writing_dicom_keeps_the_process_locale(tmp_path):
    """GDCM switches to the C locale while writing; afterwards Python's text encoding must be
    what it was (an ASCII default broke non-ASCII paths and reports later in the process)."""
    before = locale.getpreferredencoding(False)
    write_dicom_series(tmp_path / "s", np.zeros((3, 4, 4), np.int16), (2.0, 1.0, 1.0))
    assert locale.getpreferredencoding(False) == before
