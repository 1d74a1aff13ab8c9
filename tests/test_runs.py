"""runs: one scan of fold folders, weight checksums, the decision file."""
import json

import pytest

from l3loc.errors import InputError
from l3loc.runs import (available_folds, default_view, evaluated_threshold, fold_dirs, read_decision,
                        stale_folds, trained_folds, weight_hashes, write_decision)


def fold(root, view, k, files=("best.pdparams", "config.yaml"), payload=b"w"):
    d = root / view / f"fold_{k}"
    d.mkdir(parents=True)
    for name in files:
        (d / name).write_bytes(payload if name == "best.pdparams" else b"x: 1\n")
    return d


def test_fold_scan_needs_weights_and_config_and_a_fold_name(tmp_path):
    fold(tmp_path, "sagittal", 2)
    fold(tmp_path, "sagittal", 10)
    fold(tmp_path, "sagittal", 3, files=("best.pdparams",))        # no config.yaml
    (tmp_path / "sagittal" / "fold_x").mkdir()
    fold(tmp_path, "frontal", 1)
    assert available_folds(tmp_path, "sagittal") == [2, 10]
    assert [k for k, _ in fold_dirs(tmp_path, "sagittal", folds=[10])] == [10]
    assert [(v, k) for v, k, _ in trained_folds(tmp_path)] == [("frontal", 1), ("sagittal", 2),
                                                               ("sagittal", 10)]


def test_stale_folds_names_changed_and_removed_weights(tmp_path):
    fold(tmp_path, "sagittal", 1)
    fold(tmp_path, "sagittal", 2)
    recorded = weight_hashes(tmp_path)
    assert stale_folds(recorded, tmp_path) == []
    (tmp_path / "sagittal" / "fold_1" / "best.pdparams").write_bytes(b"retrained")
    (tmp_path / "sagittal" / "fold_2" / "best.pdparams").unlink()
    assert stale_folds(recorded, tmp_path) == ["sagittal/fold_1", "sagittal/fold_2"]


def test_decision_round_trip_and_a_bad_file(tmp_path):
    fold(tmp_path, "frontal", 1)
    fold(tmp_path, "sagittal", 1)
    assert read_decision(tmp_path) is None and default_view(tmp_path) == "fused"
    write_decision(tmp_path / "eval", {"frontal": {"threshold": 0.3}}, "frontal", "profile", {})
    assert read_decision(tmp_path)["views"]["frontal"]["threshold"] == 0.3
    assert default_view(tmp_path) == "frontal"
    (tmp_path / "eval" / "decision.json").write_text(json.dumps({"best_view": "frontal"}))
    with pytest.raises(InputError, match="decision.json: not a valid decision file"):
        read_decision(tmp_path)


def test_a_decision_written_when_fused_was_called_both_still_reads(tmp_path):
    fold(tmp_path, "frontal", 1)
    fold(tmp_path, "sagittal", 1)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "decision.json").write_text(json.dumps(
        {"best_view": "both", "decoder": "profile", "weights": {},
         "views": {"both": {"threshold": 0.2}, "sagittal": {"threshold": 0.4}}}))
    decision = read_decision(tmp_path)
    assert decision["best_view"] == "fused" and set(decision["views"]) == {"fused", "sagittal"}
    assert default_view(tmp_path) == "fused" and evaluated_threshold(tmp_path, "fused") == 0.2
