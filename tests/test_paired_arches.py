"""benchmarks/paired_arches.py: the same plans with every arch at one brightness."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from l3loc.io.npz import read_l3_npz
from l3loc.synth.anatomy import plan_case
from l3loc.synth.config import PRESETS

_spec = importlib.util.spec_from_file_location(
    "paired_arches", Path(__file__).resolve().parents[1] / "benchmarks" / "paired_arches.py")
paired_arches = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired_arches)


def test_one_arch_value_keeps_every_other_draw_of_the_plans():
    for i in range(20):
        drawn = plan_case(5, i).ground_truth()
        dim = plan_case(5, i, paired_arches.with_arch("default", 0.55)).ground_truth()
        assert dim.pop("arch_of_cortex") == 0.55
        lo, hi = PRESETS["default"].arch_of_cortex
        assert lo <= drawn.pop("arch_of_cortex") <= hi
        assert dim == drawn


def test_an_arch_range_must_be_positive_and_ordered():
    for bad in ((0.0, 0.5), (1.1, 0.55)):
        with pytest.raises(ValueError, match="arch_of_cortex"):
            dataclasses.replace(PRESETS["default"], arch_of_cortex=bad)


def test_writes_one_folder_per_value_whose_phantoms_differ_in_the_arches_alone(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["paired_arches.py", "--out", str(tmp_path), "--arch", "0.5", "1.1", "--n", "2",
                                     "--seed", "3", "--preset", "tiny", "--workers", "1"])
    assert paired_arches.main() == 0
    dim, bright = (json.loads((tmp_path / f"arch_{a}" / "ground_truth.json").read_text()) for a in ("0.5", "1.1"))
    assert [g["arch_of_cortex"] for g in dim + bright] == [0.5, 0.5, 1.1, 1.1]
    for a, b in zip(dim, bright):
        a.pop("arch_of_cortex"), b.pop("arch_of_cortex")
        assert a == b
    dim_ds, bright_ds = (read_l3_npz(tmp_path / f"arch_{a}" / "l3_dataset.npz")[0] for a in ("0.5", "1.1"))
    assert dim_ds.names == bright_ds.names
    assert any(not np.array_equal(a, b) for a, b in zip(dim_ds.images_f, bright_ds.images_f))   # the pictures differ
