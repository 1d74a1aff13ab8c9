"""Tests for l3loc.io.volume: round trips, orientation on real files, bad inputs."""
from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from l3loc.errors import InputError
from l3loc.io.dicom import write_dicom_series
from l3loc.io.geometry import VolumeGeometry
from l3loc.io.volume import describe_volume, read_volume, write_volume

REAL_CASES = {
    # case folder: (label file, expected orientation code)
    "totalseg_example_ct": ("spine_labels_verse_convention.nii.gz", "RAS"),
    "tptbox_l3_crop": ("seg-vert_msk.nii.gz", "PIR"),
}

# spacings and positions exactly representable in float32, so NIfTI's float32 header is exact
SPACING = (2.5, 0.75, 0.5)
Z_FIRST = 100.5


def _phantom(shape=(4, 5, 6)) -> np.ndarray:
    """int16 HU array whose every voxel is distinct, so any flip or transpose shows."""
    return (np.arange(np.prod(shape)).reshape(shape) * 3 - 1000).astype(np.int16)


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_file_round_trip(tmp_path, ext):
    hu = _phantom()
    path = write_volume(tmp_path / f"ct{ext}", hu, SPACING, z_first_mm=Z_FIRST, origin_xy_mm=(10.25, -20.5))
    vol = read_volume(path)
    assert vol.hu.dtype == np.int16
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.spacing_mm == SPACING
    assert vol.geometry == VolumeGeometry(n_slices=4, file_si_axis=2, file_si_reversed=True,
                                          z_first_mm=Z_FIRST, slice_spacing_mm=2.5)
    assert vol.meta["orientation"] == "LPS"
    assert vol.geometry.z_mm(3) == 93.0     # 100.5 - 3 * 2.5
    assert not list(tmp_path.glob(".*"))    # no temporary file left behind


def test_float_volume_stays_float32(tmp_path):
    hu = _phantom().astype(np.float32) + 0.25
    vol = read_volume(write_volume(tmp_path / "ct.nii.gz", hu, SPACING))
    assert vol.hu.dtype == np.float32
    np.testing.assert_array_equal(vol.hu, hu)


def test_write_volume_refuses_mhd_and_overwrite(tmp_path):
    with pytest.raises(ValueError, match="writes"):
        write_volume(tmp_path / "ct.mhd", _phantom(), SPACING)
    write_volume(tmp_path / "ct.nii", _phantom(), SPACING)
    with pytest.raises(FileExistsError):
        write_volume(tmp_path / "ct.nii", _phantom(), SPACING, overwrite=False)


# ------------------------------------------------------------------------------ real files

@pytest.mark.parametrize("case", sorted(REAL_CASES))
def test_real_file_orientation_and_l3(case, real_data):
    label_name, orientation = REAL_CASES[case]
    folder = real_data / case
    l3 = json.loads((folder / "l3.json").read_text())["L3"]
    ct = read_volume(folder / "ct.nii.gz")
    labels = read_volume(folder / label_name)
    assert ct.meta["orientation"] == orientation
    assert labels.geometry == ct.geometry and labels.hu.shape == ct.hu.shape

    # canonical axis 0 runs superior -> inferior: z strictly falls
    z = ct.geometry.z_mm(np.arange(ct.geometry.n_slices))
    assert np.all(np.diff(z) < 0)
    # the same array as SimpleITK's own reorientation (letters = where each axis points to)
    oriented = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(folder / "ct.nii.gz")), "LPI"))
    np.testing.assert_array_equal(ct.hu, oriented)

    c = np.nonzero(labels.hu == 22)[0].mean()
    half_voxel_mm = ct.geometry.slice_spacing_mm / 2
    assert abs(ct.geometry.z_mm(c) - l3["world_centroid_LPS"][2]) <= half_voxel_mm
    assert abs(ct.geometry.file_index(c) - l3["idx_centroid"]) <= 0.5
    assert ct.geometry.file_si_axis == "ijk".index(l3["si_axis"])


def test_real_file_z_matches_itk_physical_points(real_data):
    # independent check: world z of canonical slices 0 and last from ITK's own index->point map
    path = real_data / "tptbox_l3_crop" / "ct.nii.gz"
    vol = read_volume(path)
    image = sitk.ReadImage(str(path))
    g = vol.geometry
    for c in (0, g.n_slices - 1):
        index = [0, 0, 0]
        index[g.file_si_axis] = int(g.file_index(c))
        assert image.TransformIndexToPhysicalPoint(index)[2] == pytest.approx(g.z_mm(c), abs=1e-4)


def test_describe_volume_mentions_geometry(real_data):
    text = describe_volume(read_volume(real_data / "tptbox_l3_crop" / "ct.nii.gz"))
    assert "PIR" in text and "47 slices x 73 rows x 73 cols" in text
    assert "file j=0, z -34.20 mm" in text and "file j=46, z -103.20 mm" in text
    assert "min -1030" in text and "max 1961" in text


# ------------------------------------------------------------------------------ bad inputs

def _nifti_with_pixdim3(tmp_path: Path, value: float) -> Path:
    src = write_volume(tmp_path / "ok.nii", _phantom(), SPACING)
    data = bytearray(src.read_bytes())
    data[76 + 12:76 + 16] = struct.pack("<f", value)     # pixdim[3]
    out = tmp_path / "bad_spacing.nii"
    out.write_bytes(bytes(data))
    return out


def _mha_with_spacing(tmp_path: Path, spacing: str) -> Path:
    out = tmp_path / "bad_spacing.mha"
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
              f"ElementSpacing = {spacing}\nDimSize = 4 3 2\nElementType = MET_SHORT\n"
              "ElementDataFile = LOCAL\n")
    out.write_bytes(header.encode() + np.zeros(24, np.int16).tobytes())
    return out


def _truncated(tmp_path: Path, ext: str) -> Path:
    src = write_volume(tmp_path / f"full{ext}", _phantom((8, 9, 10)), SPACING)
    out = tmp_path / f"cut{ext}"
    out.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.7)])
    return out


def _dicom_hole(tmp_path: Path) -> Path:
    """Eight slices 2.5 mm apart with three in a row missing: a 10 mm hole."""
    files = write_dicom_series(tmp_path / "gap", _phantom((8, 5, 6)), SPACING)
    for f in files[3:6]:
        f.unlink()
    return tmp_path / "gap"


def test_dicom_series_with_a_missing_slice_is_resampled_onto_even_gaps(tmp_path):
    hu = _phantom((5, 5, 6))
    files = write_dicom_series(tmp_path / "gap", hu, SPACING, z_first_mm=10.0)
    files[2].unlink()
    with pytest.warns(UserWarning, match=r"uneven slice spacing: a gap of 5\.000 mm.*resampled onto even gaps"):
        vol = read_volume(tmp_path / "gap")
    assert vol.hu.shape == hu.shape and vol.spacing_mm == pytest.approx(SPACING)
    assert vol.geometry.z_mm(2) == pytest.approx(5.0)
    np.testing.assert_array_equal(vol.hu[[0, 1, 3, 4]], hu[[0, 1, 3, 4]])     # the file's slices
    np.testing.assert_array_equal(vol.hu[2], np.rint((hu[1].astype(float) + hu[3]) / 2))
    # slice numbers are the file's: 4 files, k = 0 the lowest (z 0) .. 3 the top (z 10)
    assert [vol.geometry.file_index(c) for c in range(5)] == pytest.approx([3, 2, 1.5, 1, 0])
    assert vol.geometry.canonical_index(1.0) == pytest.approx(3.0)
    kept = [files[c].name for c in (0, 1, 3, 4)]
    assert [Path(vol.meta["dicom_files"][c]).name for c in (0, 1, 3, 4)] == kept


def _dicom_moved_slice(tmp_path: Path, z_mm: str) -> Path:
    """Series at z 10, 7.5, 5, 2.5, 0 with the middle slice moved to ``z_mm``."""
    files = write_dicom_series(tmp_path / "moved", _phantom((5, 5, 6)), SPACING, z_first_mm=10.0)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(files[2]))
    reader.LoadPrivateTagsOn()
    image = reader.Execute()
    image.SetMetaData("0020|0032", "0.0\\0.0\\" + z_mm)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(files[2]))
    writer.Execute(image)
    return tmp_path / "moved"


def _nan_volume(tmp_path):
    hu = _phantom().astype(np.float32)
    hu[1, 2, 3] = np.nan
    return write_volume(tmp_path / "nan.nii.gz", hu, SPACING)


def _inf_nrrd(tmp_path):
    hu = _phantom().astype(np.float32)
    hu[0, 0, 0], hu[3, 4, 5] = np.inf, np.nan
    return write_volume(tmp_path / "inf.nrrd", hu, SPACING)


def _truncated_float_nii_gz(tmp_path):
    noise = np.random.default_rng(0).normal(size=(8, 9, 10)).astype(np.float32)
    src = write_volume(tmp_path / "f.nii.gz", noise, SPACING)
    out = tmp_path / "cut_float.nii.gz"
    out.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.7)])
    return out


def _two_d(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 6), np.int16)), str(tmp_path / "flat.nii"))
    return tmp_path / "flat.nii"


def _empty_dir(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    return tmp_path / "notes"


def _garbage(tmp_path):
    (tmp_path / "junk.nii.gz").write_bytes(b"this is not an image" * 10)
    return tmp_path / "junk.nii.gz"


def _png(tmp_path):
    (tmp_path / "slice.png").write_bytes(b"\x89PNG")
    return tmp_path / "slice.png"


BAD_INPUTS = {
    "missing": (lambda t: t / "nope.nii.gz", "does not exist"),
    "unsupported": (_png, "unsupported file type"),
    "garbage": (_garbage, "corrupt"),
    "truncated_nii_gz": (lambda t: _truncated(t, ".nii.gz"), "truncated|corrupt"),
    "truncated_nii": (lambda t: _truncated(t, ".nii"), "truncated NIfTI"),
    "truncated_nrrd": (lambda t: _truncated(t, ".nrrd"), "corrupt or truncated"),
    "truncated_mha": (lambda t: _truncated(t, ".mha"), "corrupt or truncated"),
    "two_d": (_two_d, "2-D image"),
    "single_slice": (lambda t: write_volume(t / "one.nii", _phantom((1, 5, 6)), SPACING), "single slice"),
    "nan_nifti": (_nan_volume, "1 voxel values are NaN"),  # ITK itself would read NaN as 0
    "nan_inf_nrrd": (_inf_nrrd, "2 voxel values are NaN or infinite"),
    "truncated_float_nii_gz": (_truncated_float_nii_gz, "truncated"),
    "nifti_zero_spacing": (lambda t: _nifti_with_pixdim3(t, 0.0), "zero or negative"),
    "nifti_negative_spacing": (lambda t: _nifti_with_pixdim3(t, -2.0), "zero or negative"),
    "mha_zero_spacing": (lambda t: _mha_with_spacing(t, "1 1 0"), "zero or negative"),
    "mha_negative_spacing": (lambda t: _mha_with_spacing(t, "1 1 -2"), "zero or negative"),
    "no_dicom": (_empty_dir, "no DICOM files"),
    "dicom_single_slice": (lambda t: (write_dicom_series(t / "one", _phantom((1, 5, 6)), SPACING),
                                      t / "one")[1], "single slice"),
    "dicom_hole": (_dicom_hole, r"gap of 10\.000 mm between.*slices are missing"),
    # 0.1 mm off: gaps 2.4 and 2.6 mm, 4 % from the 2.5 mm median
    "dicom_duplicate_position": (lambda t: _dicom_moved_slice(t, "7.5"), "same position"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_raises_input_error_naming_path(tmp_path, name):
    make, problem = BAD_INPUTS[name]
    path = make(tmp_path)
    with pytest.raises(InputError, match=problem) as info:
        read_volume(path)
    assert str(path) in str(info.value)


def test_many_slices_warn_but_read(tmp_path):
    path = write_volume(tmp_path / "tall.nii.gz", np.zeros((2001, 2, 2), np.int16), (0.5, 1.0, 1.0))
    with pytest.warns(UserWarning, match="2001 slices"):
        vol = read_volume(path)
    assert vol.hu.shape == (2001, 2, 2)


def test_series_uid_for_a_file_is_an_error(tmp_path):
    path = write_volume(tmp_path / "ct.nii", _phantom(), SPACING)
    with pytest.raises(InputError, match="only applies to DICOM"):
        read_volume(path, series_uid="1.2.3")


def test_no_warnings_on_a_plain_read(tmp_path):
    path = write_volume(tmp_path / "ct.nrrd", _phantom(), SPACING)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_volume(path)
