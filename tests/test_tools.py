"""The command-line tools as a user runs them: exit codes and one-line errors without tracebacks."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from l3loc.io.npz import L3Dataset, write_l3_npz
from l3loc.io.volume import write_volume

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True,
                          encoding="utf-8", timeout=120)


def small_dataset(n=3, bad_label=False):
    rows = np.array([10.0, 12.0, 500.0 if bad_label else 14.0])[:n]
    return L3Dataset([f"c{i}" for i in range(n)], [np.zeros((40, 20), np.int16)] * n,
                     [np.zeros((40, 16), np.int16)] * n, np.array([[0.8, 0.8, 2.0]] * n),
                     {"a": rows})


def test_inspect_npz_lists_problems_and_exits_1(tmp_path):
    write_l3_npz(tmp_path / "good.npz", small_dataset())
    ok = run("tools/inspect_data.py", tmp_path / "good.npz")
    assert ok.returncode == 0, ok.stderr
    assert "cases: 3 valid, 0 invalid" in ok.stdout and "slice thickness mm: 2..2" in ok.stdout
    write_l3_npz(tmp_path / "bad.npz", small_dataset(bad_label=True))
    bad = run("tools/inspect_data.py", tmp_path / "bad.npz")
    assert bad.returncode == 1
    assert "PROBLEM case 2 'c2': label row [500.0] outside the image rows 0..39" in bad.stdout


def test_inspect_scan_prints_canonical_geometry(tmp_path):
    hu = np.full((6, 5, 4), -1000, np.int16)
    path = write_volume(tmp_path / "scan.nii.gz", hu, (2.5, 1.0, 1.0), z_first_mm=100.0)
    out = run("tools/inspect_data.py", path)
    # the geometry is printed even for a scan that is refused as a CT (one value: a mask)
    assert "6 slices x 5 rows x 4 cols" in out.stdout
    assert "z 100.00 mm (top)" in out.stdout and "z 87.50 mm (bottom)" in out.stdout
    assert out.returncode == 1 and f"warning: {path}: only 1 distinct value (-1000)" in out.stdout


def test_inspect_warns_about_each_series_that_is_not_a_ct_in_hu(not_ct_scans):
    for path, reason in not_ct_scans.items():
        out = run("tools/inspect_data.py", path)
        assert out.returncode == 1, (path, out.stdout, out.stderr)
        warned = [ln for ln in out.stdout.splitlines() if ln.startswith("warning:")]
        assert len(warned) == 1 and warned[0].startswith(f"warning: {path}: "), out.stdout
        assert reason in warned[0] and "refuse" in warned[0], warned


def test_inspect_a_real_ct_without_a_warning(example_ct):
    out = run("tools/inspect_data.py", example_ct)
    assert out.returncode == 0 and "warning" not in out.stdout + out.stderr, out.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti at all")
    for path in (tmp_path / "missing.npz", tmp_path / "broken.nii.gz", tmp_path):
        out = run("tools/inspect_data.py", path)
        assert out.returncode == 2
        assert out.stderr.strip().startswith(f"error: {path}") and "Traceback" not in out.stderr
    debug = run("tools/inspect_data.py", tmp_path / "missing.npz", "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr
