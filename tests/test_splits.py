"""k-fold splits: deterministic, shuffled, disjoint, complete, 1-based folds, saved once."""
import json

import pytest

from l3loc.errors import InputError
from l3loc.splits import fold_cases, load_or_create_splits, make_splits

NAMES = [f"case_{i:03d}" for i in range(23)]


def test_deterministic_disjoint_complete_balanced():
    splits = make_splits(NAMES, k=5, seed=0)
    assert splits == make_splits(NAMES, k=5, seed=0)
    assert len(splits) == 5
    flat = [n for f in splits for n in f]
    assert sorted(flat) == NAMES and len(set(flat)) == len(flat)
    assert sorted(len(f) for f in splits) == [4, 4, 5, 5, 5]  # 23 = 5 + 5 + 5 + 4 + 4


def test_shuffled_not_contiguous_blocks():
    splits = make_splits(NAMES, k=5, seed=0)
    blocks = [NAMES[i * 5:(i + 1) * 5] for i in range(5)]
    assert not any(f == b for f in splits for b in blocks)
    assert make_splits(NAMES, k=5, seed=1) != splits


def test_independent_of_input_order():
    assert make_splits(NAMES[::-1], k=3, seed=4) == make_splits(NAMES, k=3, seed=4)


@pytest.mark.parametrize("names,k", [(NAMES, 1), (NAMES[:3], 4), (["a", "b", "a"], 2)])
def test_bad_split_requests(names, k):
    with pytest.raises(ValueError):
        make_splits(names, k=k)


def test_a_patient_group_stays_in_one_fold():
    # 23 names in 9 patients of 1-3 cases each (one phantom rendered by up to three generators)
    groups = [f"p{i % 9}" for i in range(23)]
    splits = make_splits(NAMES, k=4, seed=0, groups=groups)
    assert sorted(n for f in splits for n in f) == NAMES
    fold_of = {n: i for i, f in enumerate(splits) for n in f}
    for g in set(groups):
        assert len({fold_of[n] for n, gg in zip(NAMES, groups) if gg == g}) == 1
    assert max(map(len, splits)) - min(map(len, splits)) <= 3
    assert splits == make_splits(NAMES, k=4, seed=0, groups=groups)
    assert splits != make_splits(NAMES, k=4, seed=1, groups=groups)
    with pytest.raises(ValueError, match="from 3 group"):
        make_splits(NAMES, k=4, groups=[f"p{i % 3}" for i in range(23)])


def test_a_saved_split_that_separates_a_patient_is_refused(tmp_path):
    path = tmp_path / "splits.json"
    load_or_create_splits(path, NAMES, k=5, seed=0)            # made without groups
    groups = [f"p{i // 2}" for i in range(23)]                  # pairs of twins
    with pytest.raises(InputError, match="patient group") as info:
        load_or_create_splits(path, NAMES, k=5, seed=0, groups=groups)
    assert "delete it" in str(info.value)
    path.unlink()
    assert load_or_create_splits(path, NAMES, k=5, seed=0, groups=groups) == make_splits(
        NAMES, k=5, seed=0, groups=groups)


def test_fold_cases_one_based():
    splits = [["a", "b"], ["c"], ["d", "e"]]
    assert fold_cases(splits, 1) == (["c", "d", "e"], ["a", "b"])
    assert fold_cases(splits, 3) == (["a", "b", "c"], ["d", "e"])  # the last of three


@pytest.mark.parametrize("fold", [0, 4, -1, 2.5])
def test_fold_outside_range(fold):
    with pytest.raises(ValueError, match=r"1\.\.3"):
        fold_cases([["a"], ["b"], ["c"]], fold)


def test_saved_once_and_reused(tmp_path):
    path = tmp_path / "splits.json"
    first = load_or_create_splits(path, NAMES, k=5, seed=0)
    doc = json.loads(path.read_text())
    assert doc == {"k": 5, "seed": 0, "n_cases": 23, "folds": first}
    # hand-edit the file: reuse must return the file's folds, not re-split
    edited = [first[1], first[0], *first[2:]]
    path.write_text(json.dumps({**doc, "folds": edited}))
    stamp = path.stat().st_mtime_ns
    assert load_or_create_splits(path, NAMES[::-1], k=5, seed=0) == edited
    assert path.stat().st_mtime_ns == stamp  # not rewritten
    assert not [p for p in tmp_path.iterdir() if p.name != "splits.json"]  # no temp files left


@pytest.mark.parametrize("names,k,seed,message", [
    (NAMES[:-1], 5, 0, r"1 in the file but not in the dataset"),
    (NAMES + ["case_new"], 5, 0, r"1 case\(s\) not in the file"),
    (NAMES, 4, 0, r"k=5 folds, asked for k=4"),
    (NAMES, 5, 1, r"seed 0, asked for seed 1"),
])
def test_mismatch_is_a_clear_error(tmp_path, names, k, seed, message):
    path = tmp_path / "splits.json"
    load_or_create_splits(path, NAMES, k=5, seed=0)
    with pytest.raises(InputError, match=message) as info:
        load_or_create_splits(path, names, k=k, seed=seed)
    assert info.value.path == str(path) and "delete it" in str(info.value)


def test_corrupt_file(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a valid splits file"):
        load_or_create_splits(path, NAMES)
