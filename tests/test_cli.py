"""cli: the `l3loc` command (subcommands, configs by name from any folder, one-line errors) and
the tools/ scripts that run the same parsers."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from l3loc.cli import COMMANDS, TOOLS, build_parser, main, parse_folds
from l3loc.errors import InputError
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
    # the default view, both: one cache per view (not a third one named "both")
    assert main(["preprocess", "--config", "demo", "--workers", "1",
                 "--opts", "data.source=tiny.npz", "data.cache_dir=cache"]) == 0
    out = capsys.readouterr().out
    assert "frontal: 4 cases" in out and "sagittal: 4 cases" in out and "both" not in out


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


# ----------------------------------------------------------------------------- one vocabulary


def _options(command: str) -> dict:
    """option string -> argparse action of one subcommand."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {o: a for a in sub.choices[command]._actions for o in a.option_strings}


def test_every_command_selects_folds_views_devices_and_folders_alike():
    for command in ("train", "eval", "predict", "export"):
        opts = _options(command)
        assert "--fold" in opts and "--folds" not in opts, command
        assert "--work-dir" in opts, command
    # both = both nets (made one after the other); fused = the decision from both nets' profiles;
    # refined = the frontal nets' decision, its rows placed by the sagittal nets
    for command in ("train", "preprocess"):
        assert set(_options(command)["--view"].choices) == {"frontal", "sagittal", "both"}
    for command in ("eval", "predict", "export"):
        assert set(_options(command)["--view"].choices) == {"frontal", "sagittal", "fused", "refined"}
    for command in ("train", "eval", "predict"):
        assert _options(command)["--device"].default == "auto", command
    # --opts where there is a --config (README: "the commands that take --config")
    for command in COMMANDS:
        opts = _options(command)
        assert ("--opts" in opts) == ("--config" in opts), command


@pytest.mark.parametrize("values, folds", [(None, None), (["all"], None), (["3"], [3]),
                                           (["1,3"], [1, 3]), (["3", "1"], [1, 3]),
                                           (["2, 2"], [2])])
def test_fold_values(values, folds):
    assert parse_folds(values) == folds


@pytest.mark.parametrize("values", [["0"], ["x"], ["all", "1"], ["1,all"], ["-1"], ["1.5"]])
def test_bad_fold_values_name_the_option(values):
    with pytest.raises(InputError, match="^--fold: "):
        parse_folds(values)


# ----------------------------------------------------------------------------- one-line errors


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, named", [
    (["train", "--config", "demo", "--opts", "train.epochs=ten"], "'train.epochs' must be an integer"),
    (["train", "--config", "demo", "--fold", "0"], "--fold: "),
    (["eval", "--fold", "1,x"], "--fold: "),
    (["inspect", "missing.npz"], "missing.npz: file not found"),
    (["preprocess", "--config", "demo", "--opts", "data.source=missing.npz"], "missing.npz"),
])
def test_user_errors_are_one_line_naming_the_key_or_file(argv, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert err.startswith("error: ") and named in err


def test_bad_config_yaml_and_an_unwritable_output_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yml").write_text("train:\n  epochs: [1\n")
    assert main(["preprocess", "--config", "bad.yml"]) == 2
    assert "bad.yml: not valid YAML at line" in _one_line_error(capsys)
    (tmp_path / "a_file").write_text("")
    assert main(["synth", "--n", "2", "--out", "a_file/data"]) == 2  # a file where a folder must be
    assert "a_file" in _one_line_error(capsys)


def test_interrupt_is_a_clean_exit_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    import l3loc.commands.inspect as inspect_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_command, "run", interrupted)
    assert main(["inspect", "x.npz"]) == 130
    assert _one_line_error(capsys).startswith("interrupted")

    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(inspect_command, "run", bug)
    with pytest.raises(ZeroDivisionError):
        main(["inspect", "x.npz"])


def test_synth_draws_the_spines_of_the_anatomy_family_asked_for(tmp_path):
    import json

    out = tmp_path / "varied"
    assert main(["synth", "--preset", "tiny", "--n", "2", "--workers", "1", "--anatomy", "varied",
                 "--out", str(out)]) == 0
    assert {case["anatomy"] for case in json.loads((out / "ground_truth.json").read_text())} == {"varied"}


def test_synth_unusual_spines_draws_only_unusual_ones_at_one_and_refuses_a_share_past_one(tmp_path, capsys):
    import json

    out = tmp_path / "unusual"
    assert main(["synth", "--preset", "tiny", "--n", "3", "--workers", "1", "--unusual-spines", "1",
                 "--out", str(out)]) == 0
    cases = json.loads((out / "ground_truth.json").read_text())
    assert all(c["n_lumbar"] in (4, 6) and c["n_rib_pairs"] in (11, 13) and c["transitional"] for c in cases)
    capsys.readouterr()                                              # the progress lines
    assert main(["synth", "--preset", "tiny", "--n", "3", "--unusual-spines", "1.5", "--out", str(tmp_path / "x")]) == 2
    assert "--unusual-spines" in _one_line_error(capsys)
    assert not (tmp_path / "x").exists()


def test_kfold_evaluation_of_every_view_a_run_has_is_the_run_s_own(tmp_path):
    from l3loc.commands.eval import kfold_out_dir

    def run(name, views):
        for v in views:
            (tmp_path / name / v / "fold_1").mkdir(parents=True)
            for f in ("best.pdparams", "config.yaml"):
                (tmp_path / name / v / "fold_1" / f).write_text("")
        return tmp_path / name

    one = run("sagittal_only", ["sagittal"])
    assert kfold_out_dir(one, ["sagittal"], None, None, None) == one / "eval"
    assert kfold_out_dir(one, ["sagittal"], [1], None, None) == one / "eval" / "sagittal_fold1_cfgdecoder"
    two = run("both", ["frontal", "sagittal"])
    assert kfold_out_dir(two, None, None, None, None) == two / "eval"
    assert kfold_out_dir(two, ["frontal", "sagittal", "fused"], None, None, None) == two / "eval"
    assert kfold_out_dir(two, ["sagittal"], None, None, None) == two / "eval" / "sagittal_allfolds_cfgdecoder"
    assert kfold_out_dir(two, None, None, "argmax", 0.3) == two / "eval" / "all_allfolds_argmax_t0.3"
