"""l3loc.io.ct_checks: what is not a CT in HU is refused with its reason; real CTs pass quietly."""
import numpy as np
import pytest

from l3loc.errors import InputError
from l3loc.io.ct_checks import check_ct, read_ct
from l3loc.io.dicom import write_dicom_series
from l3loc.io.geometry import CTVolume
from l3loc.io.volume import read_volume, write_volume


def test_each_kind_of_wrong_series_is_refused_with_its_reason(not_ct_scans):
    for path, reason in not_ct_scans.items():
        ct, findings = read_ct(path, refuse=False)
        assert [f.refused for f in findings] == [True], (path, findings)
        assert reason in findings[0].problem, (path, findings[0].problem)
        with pytest.raises(InputError, match=reason) as err:
            read_ct(path)
        assert err.value.path == str(path)


def test_the_real_example_ct_and_crop_give_no_finding(example_ct, real_data):
    assert read_ct(example_ct) [1] == []
    # a 70 mm x 110 mm x 110 mm crop around L3: air only in the bowel, still no finding
    assert read_ct(real_data / "tptbox_l3_crop" / "ct.nii.gz")[1] == []


def test_offset_is_refused_even_when_padding_makes_values_negative(example_ct):
    ct = read_volume(example_ct)
    hu = ct.hu.astype(np.float32) + 1024
    hu[:, :, :10] = -3024 + 1024  # the scanner's padding outside the field of view, also shifted
    findings = check_ct(CTVolume(hu, ct.spacing_mm, ct.geometry, "x.nii"))
    assert findings[0].refused and "soft tissue near +1024 and no air near -1000" in findings[0].problem
    # the same padding in HU is an ordinary CT
    assert check_ct(CTVolume(hu - 1024, ct.spacing_mm, ct.geometry, "x.nii")) == []


def test_a_ct_series_in_dicom_is_read_with_its_modality(tmp_path, example_ct):
    ct = read_volume(example_ct)
    write_dicom_series(tmp_path / "ct", ct.hu[40:60], ct.spacing_mm)
    vol, findings = read_ct(tmp_path / "ct")
    assert vol.meta["modality"] == "CT" and not any(f.refused for f in findings)


def test_a_crop_without_air_and_a_short_scan_are_warnings(tmp_path, example_ct):
    ct = read_volume(example_ct)
    # inside the abdomen, 27 mm of z, its bowel gas filled with fat: lowest value -300 HU
    crop = np.maximum(ct.hu[50:60, 30:70, 40:80], -300)
    path = write_volume(tmp_path / "crop.nii.gz", crop, ct.spacing_mm)
    _, findings = read_ct(path)
    assert not any(f.refused for f in findings)
    text = " | ".join(f.problem for f in findings)
    assert "no air in the scan" in text and "covers only 27 mm of z" in text


def test_reader_warnings_come_back_as_findings_without_the_path(tmp_path, example_ct):
    ct = read_volume(example_ct)
    folder = tmp_path / "two"
    write_dicom_series(folder, ct.hu[40:60], ct.spacing_mm, series_uid="1.2.3.1")
    write_dicom_series(folder, ct.hu[40:50], ct.spacing_mm, series_uid="1.2.3.2")
    _, findings = read_ct(folder)
    assert not any(f.refused for f in findings)
    assert any(f.problem.startswith("2 DICOM series found; reading 1.2.3.1") for f in findings)
