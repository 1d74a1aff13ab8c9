"""The l3_dataset.npz reader/writer: exact round trip, validation, refusal of unsafe pickles."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from l3loc.errors import InputError
from l3loc.io.npz import L3Dataset, read_l3_npz, write_l3_npz


def make_dataset(n=3, same_shape=False):
    rng = np.random.default_rng(0)
    heights = [40] * n if same_shape else [30 + 7 * i for i in range(n)]
    return L3Dataset(
        names=[f"case{i:03d}" for i in range(n)],
        images_f=[rng.integers(-1000, 2000, (h, 24)).astype(np.int16) for h in heights],
        images_s=[rng.normal(0, 300, (h, 20)).astype(np.float32) for h in heights],
        spacings=np.array([[0.8, 0.8, 2.5]] * n),
        ydata={"annotator1": np.array([10.0, 12.5, 20.0][:n]),
               "annotator2": np.array([10.5, 12.0, np.nan][:n])},
        negative=np.array([False, False, True][:n]),
        extra={"fov": np.array(["abdomen", "cap", "chest"][:n]), "n_lumbar": np.array([5, 6, 5][:n])},
    )


@pytest.mark.parametrize("same_shape", [False, True])
def test_round_trip_is_exact(tmp_path, same_shape):
    ds = make_dataset(same_shape=same_shape)
    ds.ydata["annotator1"][2] = np.nan  # negative case: labels NaN
    write_l3_npz(tmp_path / "d.npz", ds)
    back, problems = read_l3_npz(tmp_path / "d.npz")
    assert problems == []
    assert back.names == ds.names
    for a, b in zip(ds.images_f + ds.images_s, back.images_f + back.images_s):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    np.testing.assert_array_equal(back.spacings, ds.spacings)
    assert back.ydata.keys() == ds.ydata.keys()
    for k in ds.ydata:
        np.testing.assert_array_equal(back.ydata[k], ds.ydata[k])
    np.testing.assert_array_equal(back.negative, ds.negative)
    for k in ds.extra:
        np.testing.assert_array_equal(back.extra[k], ds.extra[k])
    # the training label is the annotators' mean; negative cases have none
    np.testing.assert_allclose(back.label_rows(), [10.25, 12.25, np.nan])


def test_writer_refuses_to_overwrite(tmp_path):
    ds = make_dataset()
    ds.ydata["annotator1"][2] = np.nan
    write_l3_npz(tmp_path / "d.npz", ds)
    with pytest.raises(FileExistsError):
        write_l3_npz(tmp_path / "d.npz", ds)
    write_l3_npz(tmp_path / "d.npz", ds, overwrite=True)


def test_reads_paper_style_file_written_by_numpy(tmp_path):
    """The layout as the reference code writes it: object arrays, ydata dict, no 'negative'."""
    imgs = np.empty(2, dtype=object)
    imgs[0], imgs[1] = np.zeros((50, 30)), np.ones((60, 30))
    np.savez(tmp_path / "paper.npz", images_f=imgs, images_s=imgs, names=np.array(["a", "b"], dtype=object),
             spacings=np.array([[0.7, 0.7, 5.0], [0.9, 0.9, 1.0]]), num_images=2,
             ydata=np.array({"y1": [20, 30], "y2": [21, 31]}, dtype=object))
    ds, problems = read_l3_npz(tmp_path / "paper.npz")
    assert len(ds) == 2 and problems == [] and not ds.negative.any()
    np.testing.assert_allclose(ds.label_rows(), [20.5, 30.5])


class _MakesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _npz_with_pickle(path, payload):
    """An npz whose 'images_f' member is an object array carrying ``payload`` in its pickle."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buf.write(pickle.dumps(payload, protocol=3))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images_f.npy", buf.getvalue())


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    victim = tmp_path / "pwned.txt"
    payload = _MakesAFile(str(victim))
    # the payload is really dangerous: plain pickle creates the file ...
    pickle.loads(pickle.dumps(payload, protocol=3)).close()
    assert victim.exists()
    victim.unlink()
    # ... the reader refuses it, names the file and the forbidden global, and runs nothing
    _npz_with_pickle(tmp_path / "evil.npz", payload)
    with pytest.raises(InputError, match=r"evil\.npz: refusing to unpickle .io\.open."):
        read_l3_npz(tmp_path / "evil.npz")
    assert not victim.exists()


def test_os_system_pickle_is_refused(tmp_path):
    class Shell:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/shell_ran",))

    _npz_with_pickle(tmp_path / "evil.npz", [Shell()])
    with pytest.raises(InputError, match="refusing to unpickle"):
        read_l3_npz(tmp_path / "evil.npz")
    assert not (tmp_path / "shell_ran").exists()


def test_missing_keys_unequal_lengths_and_bad_files(tmp_path):
    np.savez(tmp_path / "nokeys.npz", images_f=np.zeros(2))
    with pytest.raises(InputError, match=r"nokeys\.npz: missing required key"):
        read_l3_npz(tmp_path / "nokeys.npz")
    ds = make_dataset()
    ds.ydata["annotator1"][2] = np.nan
    ds.names = ds.names[:2]
    write_l3_npz(tmp_path / "len.npz", ds)
    with pytest.raises(InputError, match="unequal lengths"):
        read_l3_npz(tmp_path / "len.npz")
    with pytest.raises(InputError, match="file not found"):
        read_l3_npz(tmp_path / "absent.npz")
    good = tmp_path / "good.npz"
    ds = make_dataset()
    ds.ydata["annotator1"][2] = np.nan
    write_l3_npz(good, ds)
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_l3_npz(tmp_path / "trunc.npz")


def test_invalid_cases_are_named_and_can_be_skipped(tmp_path):
    ds = make_dataset(n=3)
    ds.negative[:] = False
    ds.ydata["annotator2"][2] = 20.0
    ds.images_f[0] = ds.images_f[0].astype(np.float32)
    ds.images_f[0][3, 4] = np.nan                 # case000: NaN pixel
    ds.spacings = ds.spacings.copy()
    ds.spacings[1, 2] = 0.0                       # case001: zero slice thickness
    ds.ydata["annotator1"][2] = 500.0             # case002: label below the image
    write_l3_npz(tmp_path / "bad.npz", ds)
    with pytest.raises(InputError) as err:
        read_l3_npz(tmp_path / "bad.npz")
    msg = str(err.value)
    assert "3 invalid case(s)" in msg
    assert "case000': frontal image has 1 NaN/inf pixels" in msg
    assert "case001': spacing must be positive" in msg
    assert "case002': label row [500.0, 20.0] outside the image rows 0..43" in msg
    assert "\n" not in msg and "data.skip_bad=true" in msg  # one line, a way out that exists
    kept, problems = read_l3_npz(tmp_path / "bad.npz", skip_bad=True)
    assert len(kept) == 0 and [p.name for p in problems] == ["case000", "case001", "case002"]


def test_skip_bad_keeps_the_good_cases(tmp_path):
    ds = make_dataset(n=3)
    ds.negative[:] = False
    ds.ydata["annotator2"][2] = 20.0
    ds.images_s[1] = ds.images_s[1][None]  # 3-D image
    write_l3_npz(tmp_path / "d.npz", ds)
    kept, problems = read_l3_npz(tmp_path / "d.npz", skip_bad=True)
    assert kept.names == ["case000", "case002"]
    assert problems[0].name == "case001" and "must be 2-D" in problems[0].problem
    np.testing.assert_allclose(kept.label_rows(), [10.25, 20.0])


def test_merge_keeps_every_case_and_the_shared_arrays(tmp_path):
    from l3loc.cli import main
    from l3loc.io.npz import merge_datasets, read_case_groups

    a, b = make_dataset(3), make_dataset(2)
    a.ydata["annotator1"][2] = np.nan  # the negative case has no label
    del b.extra["fov"]
    merged, notes = merge_datasets([("g3", a), ("g4", b)])
    assert merged.names == ["g3_case000", "g3_case001", "g3_case002", "g4_case000", "g4_case001"]
    assert list(merged.extra) == ["n_lumbar", "case_group"] and notes == ["'fov' dropped: only in g3"]
    # the same case rendered by two generators is one patient
    assert merged.extra["case_group"].tolist() == ["case000", "case001", "case002", "case000", "case001"]
    np.testing.assert_array_equal(merged.label_rows()[[0, 3]], [a.label_rows()[0], b.label_rows()[0]])
    assert np.array_equal(merged.images_s[4], b.images_s[1]) and merged.negative.tolist() == [
        False, False, True, False, False]
    b.ydata = {"someone_else": b.ydata["annotator1"]}
    with pytest.raises(ValueError, match="different annotators"):
        merge_datasets([("g3", a), ("g4", b)])
    # the command: two files in, one out, never over an existing one
    for name, ds in (("g3", a), ("g4", make_dataset(2))):
        (tmp_path / name).mkdir()
        write_l3_npz(tmp_path / name / "l3_dataset.npz", ds)
    srcs = [str(tmp_path / n / "l3_dataset.npz") for n in ("g3", "g4")]
    assert main(["merge", *srcs, "--out", str(tmp_path / "nogt")]) == 0
    assert not (tmp_path / "nogt" / "ground_truth.json").exists()      # the sources have none
    for name, ds in (("g3", a), ("g4", make_dataset(2))):
        (tmp_path / name / "ground_truth.json").write_text(
            json.dumps([{"name": n, "tilt_deg": float(i)} for i, n in enumerate(ds.names)]))
    assert main(["merge", *srcs, "--out", str(tmp_path / "mix")]) == 0
    truth = json.loads((tmp_path / "mix" / "ground_truth.json").read_text())
    assert [t["name"] for t in truth] == ["g3_case000", "g3_case001", "g3_case002", "g4_case000", "g4_case001"]
    assert truth[4]["tilt_deg"] == 1.0
    back, _ = read_l3_npz(tmp_path / "mix" / "l3_dataset.npz")
    assert len(back) == 5 and back.names[3] == "g4_case000"
    assert read_case_groups(tmp_path / "mix" / "l3_dataset.npz")["g4_case000"] == "case000"
    assert read_case_groups(srcs[0]) is None
    from l3loc.splits import dataset_groups        # what training splits by
    assert dataset_groups(tmp_path / "mix" / "l3_dataset.npz", ["g4_case001", "g3_case001"]) == ["case001"] * 2
    assert dataset_groups(srcs[0], back.names) is None
    # a merge of merges keeps the first groups
    again, _ = merge_datasets([("mix", back), ("g5", make_dataset(1))])
    assert again.extra["case_group"].tolist() == [*back.extra["case_group"].tolist(), "case000"]
    assert main(["merge", *srcs, "--out", str(tmp_path / "mix")]) == 2
