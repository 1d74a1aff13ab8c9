"""benchmarks/unusual_spines.py: rows of an external evaluation grouped by spine, and which
convention (ribs or sacrum) a transitional spine's row follows."""
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from l3loc.errors import InputError
from l3loc.io.npz import read_l3_npz, write_l3_npz
from l3loc.synth.config import PRESETS, with_unusual_spines
from l3loc.synth.writers import generate_dataset

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "unusual_spines.py"
_spec = importlib.util.spec_from_file_location("unusual_spines", _path)
unusual_spines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unusual_spines)


def _row(name, npz, z, truth_z, status, right_level, view="refined", negative=False):
    return {"view": view, "folds": "ensemble", "name": name, "negative": negative, "status": status,
            "right_level": right_level, "pred_z_mm": z, "true_z_mm": truth_z,
            "error_mm": abs(z - truth_z), "input": str(npz)}


def test_a_transitional_row_at_the_sacrum_counted_l3_is_told_apart_from_one_at_the_truth(tmp_path):
    out = tmp_path / "phantoms"
    generate_dataset(out, 2, seed=3, preset=with_unusual_spines(PRESETS["tiny"], 1.0), workers=1)
    npz = out / "l3_dataset.npz"
    truth = json.loads((out / "ground_truth.json").read_text())
    assert all(case["n_lumbar"] in (4, 6) for case in truth)

    def z(case, level):       # an npz phantom's z: minus its native row times its slice spacing
        return -case["level_slices"][level] * case["spacing_mm"][0]

    a, b = truth
    from_sacrum = {4: "L2", 6: "L4"}[b["n_lumbar"]]
    rows = [_row(a["name"], npz, z(a, "L3") + 2.0, z(a, "L3"), "found", True),
            _row(b["name"], npz, z(b, from_sacrum), z(b, "L3"), "found", False),
            _row(b["name"], npz, z(b, "L3"), z(b, "L3"), "found", True, view="frontal")]   # another view
    pd.DataFrame(rows).to_csv(tmp_path / "per_case.csv", index=False)

    got = unusual_spines.spine_rows(tmp_path / "per_case.csv", "refined")
    assert list(got["at_rib_l3"]) == [True, False] and list(got["at_sacrum_l3"]) == [False, True]
    text = unusual_spines.report(got)
    assert "within 10 mm: 1 of 2" in text
    assert "from the ribs (the truth) 1, from the sacrum 1, neither 0" in text


def test_a_set_without_spine_counts_is_refused_naming_it(tmp_path):
    out = tmp_path / "phantoms"
    generate_dataset(out, 1, seed=3, preset="tiny", workers=1)
    ds, _ = read_l3_npz(out / "l3_dataset.npz")
    bare = tmp_path / "bare.npz"
    write_l3_npz(bare, replace(ds, extra={}))
    pd.DataFrame([_row(ds.names[0], bare, 0.0, 0.0, "found", True)]).to_csv(tmp_path / "per_case.csv", index=False)
    with pytest.raises(InputError, match="bare.npz.*n_lumbar"):
        unusual_spines.spine_rows(tmp_path / "per_case.csv", "refined")
