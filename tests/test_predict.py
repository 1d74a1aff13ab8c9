"""predict: every input format gives the true L3 slice and z; bad scans give error rows; resume.

The phantoms are boxes of tissue with a spine and a bright 3-slice "L3 marker" across the body.
With 2 mm slices and 2 mm processed pixels each slice is one processed row, so a "perfect" map
(the marker itself) puts the profile's peak exactly on the true row: slice and z must be exact.
"""
import json
import math
import re
import numpy as np
import pytest
import SimpleITK as sitk

from l3loc.config import load_config
from l3loc.errors import InputError
from l3loc.inference import function_localiser
from l3loc.io.dicom import write_dicom_series
from l3loc.io.volume import read_volume, write_volume
from l3loc.io.ct_checks import check_ct
from l3loc.predict import RESULT_COLUMNS, predict_scan, predict_volume, run_prediction
from l3loc.scan_inputs import list_inputs
from l3loc.mip import mip
from l3loc.preprocess import preprocess_volume
from l3loc.preprocess_config import PreprocessConfig

from conftest import MARKER_SPACING as SPACING, MARKER_Z_FIRST as Z_FIRST, marker_phantom as phantom  # noqa: E402


def stub_cfg(**eval_opts):
    opts = ["preprocess.spacing_mm=2.0", "preprocess.canvas=[32,32]"]
    return load_config(None, opts + [f"eval.{k}={v}" for k, v in eval_opts.items()])


def perfect_map(image):
    """The 'perfect model': confidence 1 on the marker (windowed 1500 HU = 1), 0 on bone/tissue."""
    return np.clip((image - 0.5) * 2.0, 0.0, 1.0)


@pytest.fixture
def stub():
    return function_localiser(perfect_map, stub_cfg())


def write_scan(kind, folder, hu, name="scan"):
    """Write ``hu`` as ``kind`` under ``folder``; return the input path to give predict."""
    if kind in ("nii.gz", "nii", "nrrd", "mha"):
        return write_volume(folder / f"{name}.{kind}", hu, SPACING, Z_FIRST)
    files = write_dicom_series(folder / name, hu, SPACING, Z_FIRST)
    return folder / name if kind == "dicom" else files[5]


@pytest.mark.parametrize("kind", ["nii.gz", "nii", "nrrd", "mha", "dicom", "dcm-file"])
def test_perfect_model_gives_exact_slice_and_z_in_every_format(tmp_path, stub, kind):
    l3 = 37
    hu = phantom(l3=l3)
    path = write_scan(kind, tmp_path / "in put é", hu)  # a space and a non-ASCII letter
    (scan,) = list_inputs([path])
    rec = predict_scan(scan, stub, tmp_path / "out", slab_mm=2.0)
    assert rec["status"] == "found", rec["message"]
    # write_volume and write_dicom_series store the most inferior slice first (k = 0), so
    # canonical slice 37 of 60 is the file's slice 60 - 1 - 37 = 22; z = 100 - 37 * 2 = 26 mm
    assert rec["l3_slice"] == 22
    assert rec["l3_slice_exact"] == pytest.approx(22.0, abs=1e-9)
    assert rec["l3_z_mm"] == pytest.approx(26.0, abs=1e-6)
    assert rec["frontal_slice"] == pytest.approx(22.0) and rec["sagittal_slice"] == pytest.approx(22.0)
    out = tmp_path / "out" / scan.name
    saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert list(saved) == list(RESULT_COLUMNS) and saved["l3_slice"] == 22
    # the one-slice NIfTI: same pixels, the scan's spacing, at the L3 z
    img = sitk.ReadImage(str(out / "l3_axial.nii.gz"))
    assert img.GetSize() == (48, 40, 1)
    assert img.GetSpacing() == pytest.approx((4.0, 4.0, 2.0))
    assert img.GetOrigin()[2] == pytest.approx(26.0, abs=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img)[0], hu[l3])
    # the slab: mean of slices 36..38 (+-2 mm at 2 mm spacing), 6 mm thick
    slab = sitk.ReadImage(str(out / "l3_slab.nii.gz"))
    assert slab.GetSpacing()[2] == pytest.approx(6.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(slab)[0], hu[36:39].mean(axis=0), atol=1e-3)
    assert (out / "qc.png").stat().st_size > 0 and (out / "l3_axial.png").stat().st_size > 0
    if kind in ("dicom", "dcm-file"):
        dcm = sitk.ReadImage(str(out / "l3_slice.dcm"))
        assert float(dcm.GetMetaData("0020|0032").split("\\")[2]) == pytest.approx(26.0)
        assert rec["dicom_file"] == f"{scan.name}/l3_slice.dcm"
    else:
        assert not (out / "l3_slice.dcm").exists() and rec["dicom_file"] is None


def test_reversed_file_order_reports_the_files_own_index(tmp_path, stub):
    """A file stored top slice first (k = 0 superior): index = canonical index, z unchanged."""
    hu = phantom(l3=20)
    img = sitk.GetImageFromArray(hu)  # numpy axis 0 -> k, so k = canonical slice
    img.SetSpacing((4.0, 4.0, 2.0))
    img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))  # k runs inferior
    img.SetOrigin((0.0, 0.0, Z_FIRST))
    sitk.WriteImage(img, str(tmp_path / "topfirst.nii.gz"))
    rec = predict_volume(read_volume(tmp_path / "topfirst.nii.gz"), stub)
    assert rec["l3_slice"] == 20 and rec["l3_z_mm"] == pytest.approx(Z_FIRST - 40.0, abs=1e-4)


def test_chest_only_phantom_is_not_found(tmp_path, stub):
    path = write_volume(tmp_path / "chest.nii.gz", phantom(markers=()), SPACING, Z_FIRST)
    rec = predict_scan(list_inputs([path])[0], stub, tmp_path / "out")
    assert rec["status"] == "not_found"
    assert rec["l3_slice"] is None and math.isnan(rec["l3_z_mm"])
    assert (tmp_path / "out" / "chest" / "qc.png").is_file()
    assert not (tmp_path / "out" / "chest" / "l3_axial.nii.gz").exists()


def test_two_markers_a_vertebra_apart_are_ambiguous_with_both_candidates(stub, tmp_path):
    hu = phantom(markers=(20, 40))  # 40 mm apart, equal height
    rec = predict_volume(read_volume(write_volume(tmp_path / "two.nii.gz", hu, SPACING, Z_FIRST)),
                         stub)
    assert rec["status"] == "ambiguous"
    assert sorted([rec["l3_z_mm"], rec["second_z_mm"]]) == pytest.approx([20.0, 60.0], abs=1e-6)


def test_a_scan_that_stops_at_l3_says_so_and_finds_nothing(stub, tmp_path):
    """60 slices of 2 mm, the marker 4 mm from the last slice: L3's body would be cut (or this is
    the last vertebra of a scan that stops above L3), so the answer is ambiguous, with why."""
    ct = read_volume(write_volume(tmp_path / "cut.nii.gz", phantom(n=60, l3=57), SPACING, Z_FIRST))
    rec = predict_volume(ct, stub)
    assert rec["status"] == "ambiguous"
    assert "within 15 mm of the scan's lower end" in rec["message"]
    assert rec["l3_z_mm"] == pytest.approx(ct.geometry.z_mm(57), abs=1e-6)   # the marker's row
    inside = predict_volume(read_volume(write_volume(tmp_path / "in.nii.gz", phantom(n=60, l3=50),
                                                     SPACING, Z_FIRST)), stub)
    assert inside["status"] == "found" and inside["message"] == ""


def test_the_qc_mip_is_the_one_the_net_was_given(tmp_path):
    ct = read_volume(write_volume(tmp_path / "a.nii.gz", phantom(), SPACING, Z_FIRST))
    pp = PreprocessConfig(spacing_mm=2.0, canvas=(32, 32))
    for view in ("frontal", "sagittal"):
        case = preprocess_volume(ct, view, cfg=pp)
        np.testing.assert_array_equal(case.native_hu,
                                      mip(ct.hu, view, ct.spacing_mm, pp.sagittal_slab_mm))
        assert case.native_hu.shape[0] == ct.hu.shape[0]


def bad_files(folder):
    """Scans that must give error rows, with the words their message must contain."""
    folder.mkdir(parents=True)
    write_volume(folder / "mask.nii.gz", (phantom() > 300).astype(np.int16), SPACING)
    mr = np.clip(phantom().astype(np.float32) + 1000, 0, None) * 0.8  # 0..2000, no negatives
    write_volume(folder / "mr.nii.gz", mr.astype(np.int16), SPACING)
    write_volume(folder / "one slice.nii.gz", phantom()[30:31], SPACING)
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    files = write_dicom_series(folder / "gap", phantom(), SPACING)
    for f in files[30:34]:            # a hole of four slices
        f.unlink()
    return {"mask": "label map", "mr": "not a CT", "one slice": "single slice",
            "broken": "corrupt", "gap": "slices are missing"}


def test_bad_scans_in_a_cohort_give_error_rows_and_the_others_succeed(tmp_path, stub):
    cohort = tmp_path / "cohort"
    expected = bad_files(cohort)
    write_volume(cohort / "good.nii.gz", phantom(l3=30), SPACING, Z_FIRST)
    scans = list_inputs([cohort])
    assert sorted(s.name for s in scans) == sorted(list(expected) + ["good"])
    records = run_prediction(scans, stub, tmp_path / "out")
    by_name = {r["name"]: r for r in records}
    assert by_name["good"]["status"] == "found" and by_name["good"]["l3_z_mm"] == pytest.approx(40.0)
    for name, words in expected.items():
        assert by_name[name]["status"] == "error", name
        assert words in by_name[name]["message"], (name, by_name[name]["message"])
    table = (tmp_path / "out" / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(table) == 1 + len(scans)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    # review order: every error before the one found scan
    assert page.index("good.nii.gz") > max(page.index(f"{n}") for n in ("mask", "broken", "gap"))


def test_series_that_are_not_ct_in_hu_give_error_rows_and_the_cohort_goes_on(tmp_path, stub,
                                                                             not_ct_scans):
    good = write_volume(tmp_path / "good.nii.gz", phantom(l3=30), SPACING, Z_FIRST)
    records = run_prediction(list_inputs([*not_ct_scans, good]), stub, tmp_path / "out")
    assert [r["status"] for r in records] == ["error"] * len(not_ct_scans) + ["found"]
    for rec, reason in zip(records, not_ct_scans.values()):
        assert reason in rec["message"], (rec["input"], rec["message"])
    assert records[-1]["l3_z_mm"] == pytest.approx(40.0)


def test_the_real_example_ct_gives_no_warning(tmp_path, stub, example_ct):
    rec = predict_scan(list_inputs([example_ct])[0], stub, tmp_path / "out")
    assert rec["status"] != "error" and rec["warnings"] == "", (rec["message"], rec["warnings"])


def test_warnings_for_a_cropped_scan_and_many_slices(tmp_path, stub):
    hu = phantom(n=2001, rows=6, cols=6, markers=())
    hu[hu < -300] = -300  # no air: a crop inside the body
    path = write_volume(tmp_path / "long.nii.gz", hu, (0.5, 4.0, 4.0))
    with pytest.warns(UserWarning, match="2001 slices"):
        ct = read_volume(path)
    assert any("no air" in f.problem and not f.refused for f in check_ct(ct))
    # the result row carries both: the reader's slice-count warning and check_ct's, once each
    warned = predict_scan(list_inputs([path])[0], stub, tmp_path / "out")["warnings"].split("; ")
    assert any("no air" in n for n in warned)
    assert sum("2001 slices" in n for n in warned) == 1


def test_csv_list_relative_paths_and_names(tmp_path, stub):
    write_volume(tmp_path / "scans" / "a.nii.gz", phantom(l3=30), SPACING, Z_FIRST)
    write_dicom_series(tmp_path / "scans" / "dcm a", phantom(l3=25), SPACING, Z_FIRST)
    (tmp_path / "list.csv").write_text("path,name\nscans/a.nii.gz,first\nscans/dcm a,second\n"
                                       "scans/missing.nii.gz,\n")
    scans = list_inputs([tmp_path / "list.csv"])
    assert [s.name for s in scans] == ["first", "second", "missing"]
    recs = run_prediction(scans, stub, tmp_path / "out")
    assert [r["status"] for r in recs] == ["found", "found", "error"]
    assert recs[1]["l3_z_mm"] == pytest.approx(Z_FIRST - 50.0) and "does not exist" in recs[2]["message"]


def test_annotation_csv_adds_truth_and_error(tmp_path, stub):
    write_volume(tmp_path / "a.nii.gz", phantom(l3=30), SPACING, Z_FIRST)
    (tmp_path / "ann.csv").write_text("path,l3_z_mm\na.nii.gz,42.0\n")
    (rec,) = run_prediction(list_inputs([tmp_path / "ann.csv"]), stub, tmp_path / "out")
    assert rec["true_z_mm"] == pytest.approx(42.0) and rec["error_mm"] == pytest.approx(2.0)


def test_resume_skips_done_scans_and_retries_errors(tmp_path, stub, monkeypatch):
    write_volume(tmp_path / "in" / "a.nii.gz", phantom(l3=30), SPACING, Z_FIRST)
    write_volume(tmp_path / "in" / "b.nii.gz", phantom(l3=25), SPACING, Z_FIRST)
    (tmp_path / "in" / "c.nii.gz").write_bytes(b"junk")
    scans = list_inputs([tmp_path / "in"])
    first = run_prediction(scans, stub, tmp_path / "out")
    with pytest.raises(InputError, match="--resume"):
        run_prediction(scans, stub, tmp_path / "out")
    import l3loc.predict as predict_module

    done = []
    real = predict_module.predict_scan
    monkeypatch.setattr(predict_module, "predict_scan",
                        lambda scan, *a, **k: done.append(scan.name) or real(scan, *a, **k))
    again = run_prediction(scans, stub, tmp_path / "out", resume=True)
    assert done == ["c"]  # a and b were done; the error is retried
    assert [r["l3_slice"] for r in again] == [r["l3_slice"] for r in first]
    assert [r["status"] for r in again] == ["found", "found", "error"]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["skipped"] == 2
    # another threshold (or model) made the saved results: resuming redoes every scan
    done.clear()
    other = function_localiser(perfect_map, stub_cfg(), threshold=0.9)
    run_prediction(scans, other, tmp_path / "out", resume=True)
    assert done == ["a", "b", "c"]
    assert json.loads((tmp_path / "out" / "model.json").read_text())["threshold"] == 0.9
    done.clear()
    run_prediction(scans, other, tmp_path / "out", resume=True)
    assert done == ["c"]


# ----------------------------------------------------------------------------- a trained model


def test_trained_model_finds_l3_within_two_slices(tmp_path, trained_run):
    from l3loc.inference import load_localiser

    loc = load_localiser(trained_run, "fused", backend="dygraph", threshold=0.3)
    assert loc.views["frontal"].folds == (1,)
    for i, (n, l3, kind) in enumerate([(64, 20, "nii.gz"), (70, 45, "dicom"), (56, 30, "mha")]):
        path = write_scan(kind, tmp_path / f"s{i}", phantom(n=n, l3=l3, seed=100 + i))
        rec = predict_volume(read_volume(path), loc)
        assert rec["status"] == "found", rec
        assert abs(rec["l3_slice"] - (n - 1 - l3)) <= 2, rec
        assert abs(rec["l3_z_mm"] - (Z_FIRST - 2.0 * l3)) <= 4.0
    chest = predict_volume(read_volume(write_scan("nii.gz", tmp_path, phantom(markers=()), "chest")),
                           loc)
    assert chest["status"] == "not_found", chest["confidence"]


def test_predict_tool_end_to_end(tmp_path, trained_run):
    import subprocess
    import sys
    from pathlib import Path

    write_volume(tmp_path / "scan one.nii.gz", phantom(l3=30), SPACING, Z_FIRST)
    tool = Path(__file__).resolve().parents[1] / "tools" / "predict.py"
    cmd = [sys.executable, str(tool), str(tmp_path / "scan one.nii.gz"), "--experiment",
           str(trained_run), "--out", str(tmp_path / "out"), "--threshold", "0.3", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scan one: found, L3 slice" in done.stdout
    assert (tmp_path / "out" / "scan one" / "l3_axial.nii.gz").is_file()


def test_an_ensemble_whose_folds_count_differently_is_ambiguous_not_found_on_a_level(tmp_path, monkeypatch):
    """Two "folds" of one model: fold 1 puts every level right, fold 2, a little less sure, one
    vertebra higher. Their mean decodes fold 1's L3, but fold 2 claims another vertebra on its
    own: prediction says ambiguous and names the fold; with fold 1 twice, found."""
    from l3loc.labels import level_targets
    from l3loc.levels import LEVELS, nominal_distance_mm

    rows = np.array([40 + nominal_distance_mm("T12", k) / 2.0 for k in LEVELS])
    high = rows - (rows[3] - rows[2])
    hu = phantom(n=200, l3=int(round(rows[3])))
    cfg = stub_cfg()
    cfg["label"]["levels"] = list(LEVELS)

    def fold(level_rows, peak):
        return lambda image: peak * level_targets(image.shape[0], image.shape[1], level_rows, 4.0, 2.0)

    import l3loc.scan_outputs

    titles = []
    drawn = l3loc.scan_outputs.write_qc_png
    monkeypatch.setattr(l3loc.scan_outputs, "write_qc_png",
                        lambda path, title, *a, **k: titles.append(title) or drawn(path, title, *a, **k))
    (scan,) = list_inputs([write_scan("nii.gz", tmp_path, hu)])
    split = function_localiser([fold(rows, 1.0), fold(high, 0.7)], cfg, threshold=0.3)
    rec = predict_scan(scan, split, tmp_path / "split")
    assert titles[-1].endswith("\n" + rec["message"])   # the QC picture says why, too
    assert rec["status"] == "ambiguous", rec
    assert re.fullmatch(r"fold 2 on its own puts L3 3\d mm higher", rec["message"]), rec["message"]
    assert rec["l3_z_mm"] == pytest.approx(Z_FIRST - 2.0 * rows[3], abs=0.5)
    assert rec["second_z_mm"] == pytest.approx(Z_FIRST - 2.0 * rows[2], abs=0.5)   # fold 2's L3
    same = function_localiser([fold(rows, 1.0), fold(rows, 0.7)], cfg, threshold=0.3)
    assert predict_scan(scan, same, tmp_path / "same")["status"] == "found"


def test_a_single_l3_ensemble_whose_fold_peaks_on_another_vertebra_is_ambiguous(tmp_path):
    """The same for a single-L3 model: fold 2's own peak lies 40 mm higher at 0.7, over the
    threshold; the ensemble's L3 (fold 1's) is kept, fold 2's row is the second candidate."""
    l3 = 100
    hu = phantom(n=200, l3=l3)
    cfg = stub_cfg()

    def band(row, peak):
        def fn(image):
            out = np.zeros(image.shape, np.float32)
            out[row - 2: row + 3] = peak
            return out
        return fn

    (scan,) = list_inputs([write_scan("nii.gz", tmp_path, hu)])
    ensemble = function_localiser([band(l3, 1.0), band(l3 - 20, 0.7)], cfg, threshold=0.3)
    rec = predict_scan(scan, ensemble, tmp_path / "split")
    assert rec["status"] == "ambiguous", rec
    assert rec["message"] == "fold 2 on its own puts L3 40 mm higher"
    assert rec["l3_z_mm"] == pytest.approx(Z_FIRST - 2.0 * l3, abs=0.5)
    assert rec["second_z_mm"] == pytest.approx(Z_FIRST - 2.0 * (l3 - 20), abs=0.5)
    weak = function_localiser([band(l3, 1.0), band(l3 - 20, 0.2)], cfg, threshold=0.3)
    assert predict_scan(scan, weak, tmp_path / "weak")["status"] == "found"   # no claim under 0.3


def test_every_level_reported_and_level_l1_extracts_the_l1_slice(tmp_path):
    from l3loc.labels import level_targets
    from l3loc.levels import LEVELS, nominal_distance_mm

    # levels at their nominal spacing on 2 mm slices, T12 at canonical slice 30
    rows = np.array([30 + nominal_distance_mm("T12", k) / 2.0 for k in LEVELS])
    hu = phantom(n=200, l3=int(round(rows[3])))
    cfg = stub_cfg()
    cfg["label"]["levels"] = list(LEVELS)
    loc = function_localiser(lambda image: level_targets(image.shape[0], image.shape[1], rows,
                                                         4.0, 2.0), cfg)
    (scan,) = list_inputs([write_scan("nii.gz", tmp_path, hu)])
    rec = predict_scan(scan, loc, tmp_path / "out", level="L1")
    assert rec["status"] == "found", rec["message"]
    for k, r in zip(LEVELS, rows):
        z = rec[f"{k.lower()}_z_mm"]
        assert z == pytest.approx(Z_FIRST - 2.0 * r, abs=0.5)
        assert rec[f"{k.lower()}_slice" if k != "L3" else "l3_slice_exact"] == pytest.approx(200 - 1 - r, abs=0.25)
    assert rec["extracted_level"] == "L1" and rec["sequence_confidence"] > 0.5
    out = tmp_path / "out" / scan.name
    img = sitk.ReadImage(str(out / "l1_axial.nii.gz"))
    c = int(round(rows[1]))
    assert img.GetOrigin()[2] == pytest.approx(Z_FIRST - 2.0 * c, abs=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img)[0], hu[c])
    assert not (out / "l3_axial.nii.gz").exists()
    # a single-L3 model cannot extract L1
    with pytest.raises(InputError, match="locates L3"):
        run_prediction([scan], function_localiser(perfect_map, stub_cfg()), tmp_path / "o2",
                       level="L1")
