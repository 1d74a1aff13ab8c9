"""Tests for l3loc.io.annotations: both position kinds, negative rows, round trip, bad CSVs."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from l3loc.errors import InputError
from l3loc.io.annotations import annotation_to_canonical_row, read_annotations, write_annotations
from l3loc.io.geometry import VolumeGeometry
from l3loc.io.volume import read_volume

# 10 slices, file index runs superiorly (like an RAS NIfTI), top slice at z = 50 mm, 2 mm apart
GEOMETRY = VolumeGeometry(n_slices=10, file_si_axis=2, file_si_reversed=True, z_first_mm=50.0,
                          slice_spacing_mm=2.0)


@pytest.fixture
def scans(tmp_path) -> Path:
    """A folder with two scan 'files' and a DICOM 'folder' (existence is all the reader checks)."""
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a.nii.gz").write_bytes(b"")
    (tmp_path / "scans" / "b.nrrd").write_bytes(b"")
    (tmp_path / "dicom_c").mkdir()
    return tmp_path


def _csv(folder: Path, text: str, name: str = "ann.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_slice_column_relative_paths_names_and_negative(scans):
    csv = _csv(scans, "path,l3_slice,negative,name\n"
                      "scans/a.nii.gz,73.5,,\n"
                      "dicom_c,,1,patient c\n"
                      "scans/b.nrrd, 12 ,0,\n")
    df = read_annotations(csv)
    assert list(df["name"]) == ["a", "patient c", "b"]
    assert list(df["path"]) == [str(scans / "scans" / "a.nii.gz"), str(scans / "dicom_c"),
                                str(scans / "scans" / "b.nrrd")]
    assert df["l3_slice"].iloc[0] == 73.5 and math.isnan(df["l3_slice"].iloc[1])
    assert df["l3_slice"].iloc[2] == 12.0
    assert list(df["negative"]) == [False, True, False]
    assert list(df["csv_line"]) == [2, 3, 4]
    assert df.attrs["position"] == "l3_slice" and "l3_z_mm" not in df.columns


def test_z_column(scans):
    df = read_annotations(_csv(scans, "path,l3_z_mm,series_uid\nscans/a.nii.gz,-65.6,1.2.3\n"))
    assert df["l3_z_mm"].iloc[0] == -65.6 and df["series_uid"].iloc[0] == "1.2.3"
    assert df.attrs["position"] == "l3_z_mm" and not df["negative"].iloc[0]


def test_to_canonical_hand_worked():
    assert annotation_to_canonical_row({"l3_slice": 7.0}, GEOMETRY) == 2.0    # 9 - 7
    assert annotation_to_canonical_row({"l3_z_mm": 41.0}, GEOMETRY) == 4.5    # (50 - 41) / 2
    assert math.isnan(annotation_to_canonical_row({"l3_slice": math.nan, "negative": True}, GEOMETRY))
    # edges: half a slice beyond the first/last slice centre still counts as inside
    assert annotation_to_canonical_row({"l3_z_mm": 51.0}, GEOMETRY) == -0.5


@pytest.mark.parametrize("row", [{"l3_slice": 9.6}, {"l3_z_mm": 60.0}, {"l3_z_mm": 30.0}])
def test_to_canonical_outside_the_scan(row):
    with pytest.raises(InputError, match="outside the scan") as info:
        annotation_to_canonical_row({**row, "path": "/data/x.nii.gz", "csv_line": 5}, GEOMETRY)
    assert "/data/x.nii.gz" in str(info.value) and "line 5" in str(info.value)


def test_real_file_slice_and_z_agree(tmp_path, example_ct):
    # l3.json: L3 centroid at file k = 73.34, world z = 314.3 mm; both must land on one canonical row
    csv = _csv(tmp_path, f"path,l3_slice\n{example_ct},73.34\n")
    csv_z = _csv(tmp_path, f"path,l3_z_mm\n{example_ct},314.3\n", name="z.csv")
    geometry = read_volume(example_ct).geometry
    c_slice = annotation_to_canonical_row(read_annotations(csv).iloc[0], geometry)
    c_z = annotation_to_canonical_row(read_annotations(csv_z).iloc[0], geometry)
    assert c_slice == pytest.approx(111 - 73.34)
    assert c_z == pytest.approx(c_slice, abs=0.01)   # l3.json rounds z to 0.1 mm = 0.03 slices


def test_write_read_round_trip(scans):
    df = read_annotations(_csv(scans, "name,path,l3_slice,negative\n"
                                      "a,scans/a.nii.gz,73.25,0\nc,dicom_c,,1\n"))
    out = write_annotations(scans / "copy.csv", df)
    text = out.read_text()
    assert "scans/a.nii.gz" in text and str(scans) not in text   # relative inside the CSV's folder
    back = read_annotations(out)
    pd.testing.assert_frame_equal(back, df)


def test_level_columns_transitional_and_round_trip(scans):
    csv = _csv(scans, "path,l3_slice,negative,l1_slice,s1_slice,transitional\n"
                      "scans/a.nii.gz,7,,5.5,,1\nscans/b.nrrd,,1,8,,0\n")
    df = read_annotations(csv)
    assert df["l1_slice"].tolist() == [5.5, 8.0] and df["s1_slice"].isna().all()
    assert df["transitional"].tolist() == [True, False]
    # a chest CT: L3 negative, L1 annotated; levels map through the geometry like L3
    row = df.iloc[1]
    assert math.isnan(annotation_to_canonical_row(row, GEOMETRY))
    assert annotation_to_canonical_row(row, GEOMETRY, "L1") == 1.0          # 9 - 8
    assert math.isnan(annotation_to_canonical_row(row, GEOMETRY, "S1"))     # empty = absent
    assert math.isnan(annotation_to_canonical_row(row, GEOMETRY, "T12"))    # no column
    back = read_annotations(write_annotations(scans / "copy.csv", df))
    pd.testing.assert_frame_equal(back, df)


def test_review_status_and_note_are_kept_and_never_positions(scans):
    """corrections.csv of the review page: status and reviewer_note ride along as text."""
    csv = _csv(scans, 'name,path,l3_slice,negative,status,reviewer_note\n'
                      'a,scans/a.nii.gz,7,0,corrected,"moved 3, faint"\n'
                      'c,dicom_c,,1,negative,\n'
                      'b,scans/b.nrrd,2,0,unsure,12\n')
    df = read_annotations(csv)
    assert df["l3_slice"].tolist()[::2] == [7.0, 2.0] and df["negative"].tolist() == [False, True, False]
    assert df["status"].tolist() == ["corrected", "negative", "unsure"]
    assert df["reviewer_note"].tolist() == ["moved 3, faint", "", "12"]   # text, even "12"
    assert annotation_to_canonical_row(df.iloc[0], GEOMETRY) == 2.0        # 9 - 7
    back = read_annotations(write_annotations(scans / "copy.csv", df))
    pd.testing.assert_frame_equal(back, df)


def test_level_columns_must_match_the_position_unit(scans):
    with pytest.raises(InputError, match=r"\['l1_z_mm'\] do not match the position column 'l3_slice'"):
        read_annotations(_csv(scans, "path,l3_slice,l1_z_mm\nscans/a.nii.gz,7,12\n"))
    with pytest.raises(InputError, match="line 2: l1_z_mm 'x' is not a number"):
        read_annotations(_csv(scans, "path,l3_z_mm,l1_z_mm\nscans/a.nii.gz,7,x\n"))


def test_write_keeps_outside_paths_absolute(scans, tmp_path):
    df = read_annotations(_csv(scans, "path,l3_z_mm\nscans/a.nii.gz,12.5\n"))
    out = write_annotations(tmp_path / "elsewhere" / "ann.csv", df)
    assert str(scans / "scans" / "a.nii.gz") in out.read_text()
    assert read_annotations(out)["l3_z_mm"].iloc[0] == 12.5
    with pytest.raises(FileExistsError):
        write_annotations(out, df, overwrite=False)


BAD_CSVS = {
    "no_path_column": ("file,l3_slice\nscans/a.nii.gz,3\n", "no 'path' column"),
    "both_positions": ("path,l3_slice,l3_z_mm\nscans/a.nii.gz,3,4\n", "exactly one position column"),
    "no_position": ("path,name\nscans/a.nii.gz,a\n", "exactly one position column"),
    "unknown_column": ("path,l3slice\nscans/a.nii.gz,3\n", r"unknown column\(s\) \['l3slice'\]"),
    "header_only": ("path,l3_slice\n", "no rows"),
    "empty_file": ("", "the file is empty"),
    "ragged": ("path,l3_slice\nscans/a.nii.gz,3,4,5\n", "line 2: 4 fields, the header has 2"),
    "empty_path": ("path,l3_slice\nscans/a.nii.gz,3\n,4\n", "line 3: empty path"),
    "missing_scan": ("path,l3_slice\nscans/zz.nii.gz,3\n", "line 2: scan scans/zz.nii.gz not found"),
    "not_a_number": ("path,l3_slice\nscans/a.nii.gz,L3\n", "line 2: l3_slice 'L3' is not a number"),
    "infinite": ("path,l3_z_mm\nscans/a.nii.gz,inf\n", "not a finite number"),
    "negative_index": ("path,l3_slice\nscans/a.nii.gz,-2\n", "line 2: l3_slice -2 is negative"),
    "empty_position": ("path,l3_slice\nscans/a.nii.gz,\n", "line 2: l3_slice is empty"),
    "negative_with_value": ("path,l3_slice,negative\nscans/a.nii.gz,3,1\n", "negative=1 .* leave it empty"),
    "bad_negative": ("path,l3_slice,negative\nscans/a.nii.gz,3,maybe\n", "negative must be 1"),
    "duplicate": ("path,l3_slice\nscans/a.nii.gz,3\n./scans/a.nii.gz,4\n",
                  "line 3: .* already annotated on line 2"),
    "repeated_column": ("path,l3_slice,path\nscans/a.nii.gz,3,x\n", "repeated column|unknown column"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSVS))
def test_bad_csv_raises_input_error_naming_csv(scans, name):
    text, problem = BAD_CSVS[name]
    csv = _csv(scans, text)
    with pytest.raises(InputError, match=problem) as info:
        read_annotations(csv)
    assert str(csv) in str(info.value)


def test_missing_csv(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_annotations(tmp_path / "none.csv")


def test_check_paths_off_allows_absent_scans(tmp_path):
    df = read_annotations(_csv(tmp_path, "path,l3_slice\nfar/away.nii,3\n"), check_paths=False)
    assert df["path"].iloc[0] == str(tmp_path / "far" / "away.nii")
    assert df["name"].iloc[0] == "away"


def test_l3_body_extent_columns(tmp_path):
    csv = _csv(tmp_path, "path,l3_z_mm,l3_top_z_mm,l3_bottom_z_mm,negative\n"
                         "scans/a.nii.gz,316.3,330.4,302.1,0\nscans/b.nii.gz,,,,1\n"
                         "scans/c.nii.gz,50,,,0\n")
    df = read_annotations(csv, check_paths=False)
    assert df.loc[0, ["l3_top_z_mm", "l3_bottom_z_mm"]].tolist() == [330.4, 302.1]
    assert math.isnan(df.loc[1, "l3_top_z_mm"])
    assert math.isnan(df.loc[2, "l3_top_z_mm"])  # optional per row: scored by distance then


@pytest.mark.parametrize("text, problem", [
    ("path,l3_z_mm,l3_top_z_mm\na.nii.gz,316,330\n", "without l3_bottom_z_mm"),
    ("path,l3_z_mm,l3_top_z_mm,l3_bottom_z_mm\na.nii.gz,316,300,330\n", "must be above"),
    ("path,l3_z_mm,l3_top_z_mm,l3_bottom_z_mm\na.nii.gz,316,x,300\n", "line 2: l3_top_z_mm 'x'"),
    ("path,l3_z_mm,l3_top_z_mm,l3_bottom_z_mm,negative\na.nii.gz,,330,300,1\n", "leave it empty"),
])
def test_bad_l3_body_extent(tmp_path, text, problem):
    with pytest.raises(InputError, match=problem):
        read_annotations(_csv(tmp_path, text), check_paths=False)
