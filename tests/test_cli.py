"""cli: the `l3loc` command (subcommands, configs by name from any folder, one-line errors) and
the tools/ scripts that run the same parsers."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from l3loc.cli import COMMANDS, TOOLS, build_parser, main
from l3loc.io.npz import L3Dataset, write_l3_npz

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_help_and_every_tool_a_command(capsys):
    assert set(TOOLS.values()) == set(COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert f"usage: l3loc {command}" in capsys.readouterr().out
    assert "predict" in build_parser().format_help()


def test_preprocess_with_a_config_by_name_from_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: `demo` comes from the package
    n = 4
    ds = L3Dataset([f"c{i}" for i in range(n)], [np.full((60, 24), 300, np.int16)] * n,
                   [np.full((60, 20), 300, np.int16)] * n, np.array([[2.0, 2.0, 3.0]] * n),
                   {"a": np.array([20.0, 25.0, 30.0, 35.0])})
    write_l3_npz(tmp_path / "tiny.npz", ds)
    code = main(["preprocess", "--config", "demo", "--view", "sagittal", "--workers", "1",
                 "--opts", "data.source=tiny.npz", "data.cache_dir=cache"])
    assert code == 0
    assert "sagittal: 4 cases in cache" in capsys.readouterr().out
    assert any((tmp_path / "cache").iterdir())


def test_unknown_config_name_is_one_line_naming_the_packaged_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["preprocess", "--config", "cpu_fats"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: cpu_fats: config file not found") and "cpu_fast" in err


def test_tools_script_runs_the_same_command_from_another_folder(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: tools/train.py" in done.stdout and "--config CONFIG" in done.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--config", "nope"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: nope: config file not found")
