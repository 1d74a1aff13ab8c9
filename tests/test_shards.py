"""A cohort predicted in 2 shares and merged equals the cohort predicted at once."""
import csv

import pytest

from l3loc.cli import main
from l3loc.errors import InputError
from l3loc.io.volume import write_volume
from l3loc.shards import merge_predictions, parse_shard, shard_of
from test_predict import SPACING, Z_FIRST, phantom


def test_shares_are_disjoint_round_robin_and_cover_the_cohort():
    items = list(range(7))
    shares = [shard_of(items, k, 3) for k in (1, 2, 3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "2", "a/b"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)


def rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_two_shares_merged_equal_one_run(tmp_path, trained_run):
    cohort = tmp_path / "cohort"
    for i, l3 in enumerate((20, 33, 41, 27, 36)):
        write_volume(cohort / f"case{i}.nii.gz", phantom(n=60, l3=l3, seed=200 + i), SPACING, Z_FIRST)
    (cohort / "case5.nii.gz").write_bytes(b"not a scan")  # an error row travels too
    common = [str(cohort), "--experiment", str(trained_run), "--threshold", "0.3",
              "--device", "cpu", "--backend", "dygraph"]
    assert main(["predict", *common, "--out", str(tmp_path / "one")]) == 0
    for k in (1, 2):
        assert main(["predict", *common, "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")]) == 0
    assert len(rows(tmp_path / "s1" / "results.csv")) == 3
    assert main(["predict", "--merge", str(tmp_path / "s2"), str(tmp_path / "s1"),
                 "--out", str(tmp_path / "all")]) == 0

    one, merged = rows(tmp_path / "one" / "results.csv"), rows(tmp_path / "all" / "results.csv")
    assert [r["name"] for r in merged] == [f"case{i}" for i in range(6)]
    assert merged == one
    assert {r["status"] for r in merged} >= {"found", "error"}
    for r in merged:
        if r["qc_png"]:
            assert (tmp_path / "all" / r["qc_png"]).is_file()
    html = (tmp_path / "all" / "index.html").read_text()
    assert all(f"case{i}" in html for i in range(6))

    with pytest.raises(InputError, match="share\\(s\\) 2/2 missing"):
        merge_predictions([tmp_path / "s1"], tmp_path / "half")
    with pytest.raises(InputError, match="made without --shard"):
        merge_predictions([tmp_path / "one"], tmp_path / "x")
    with pytest.raises(InputError, match="holds results"):
        merge_predictions([tmp_path / "s1", tmp_path / "s2"], tmp_path / "all")
