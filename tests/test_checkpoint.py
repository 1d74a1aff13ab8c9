"""io.checkpoint: real checkpoints load as paddle.load loads them; a pickle that would run code is
refused by every command that opens a model, and nothing runs."""
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import l3loc  # noqa: F401  (sets the MKL/OpenMP variables before paddle loads)
from l3loc.errors import InputError
from l3loc.io.checkpoint import load_checkpoint
from l3loc.io.volume import write_volume

from test_engine import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny experiment (sagittal fold 1 of 2, two one-step epochs) as train.py writes it."""
    from l3loc.engine import run_training

    tmp = tmp_path_factory.mktemp("ckpt")
    cfg_path = tiny_config(tmp)
    run_training(cfg_path, fold="1", view="sagittal", device="cpu")
    return cfg_path, tmp / "work" / "tiny"


def assert_same(ours, theirs, where="."):
    """Same structure, types, tensor names, dtypes and values."""
    import paddle

    assert type(ours) is type(theirs), (where, type(ours), type(theirs))
    if isinstance(ours, dict):
        assert list(ours) == list(theirs), where
        for k in ours:
            assert_same(ours[k], theirs[k], f"{where}/{k}")
    elif isinstance(ours, paddle.Tensor):
        assert (ours.name, ours.dtype, ours.shape) == (theirs.name, theirs.dtype, theirs.shape), where
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    else:
        assert ours == theirs, where


def test_training_checkpoints_load_as_paddle_load_loads_them(trained):
    import paddle

    _, exp = trained
    fold = exp / "sagittal" / "fold_1"
    for name in ("best.pdparams", "last.pdparams", "last.pdopt"):
        assert_same(load_checkpoint(fold / name), paddle.load(str(fold / name)))
    state = load_checkpoint(fold / "last.pdopt")
    assert state["epoch"] == 1 and len(state["optimizer"]) > 0


def test_optimizer_with_lr_scheduler_round_trips(tmp_path):
    """Adam with a scheduler adds "LR_Scheduler" and the name table; set_state_dict takes both."""
    import paddle

    def setup():
        paddle.seed(0)
        net = paddle.nn.Linear(3, 2)
        sched = paddle.optimizer.lr.CosineAnnealingDecay(0.1, 10)
        return net, sched, paddle.optimizer.Adam(learning_rate=sched, parameters=net.parameters())

    net, sched, opt = setup()
    for _ in range(3):
        net(paddle.ones([4, 3])).mean().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    paddle.save(opt.state_dict(), str(tmp_path / "o.pdopt"))
    state = load_checkpoint(tmp_path / "o.pdopt")
    assert_same(state, paddle.load(str(tmp_path / "o.pdopt")))
    _, sched2, opt2 = setup()
    opt2.set_state_dict(state)
    assert sched2.last_epoch == 3 and opt2.get_lr() == pytest.approx(opt.get_lr())


class _RunsCode:
    """Unpickles to a call of exec(): the file that creates is the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def plant(path: Path, marker: Path) -> None:
    """Overwrite a checkpoint with its own arrays plus one entry that runs code when unpickled."""
    with open(path, "rb") as fh:
        state = pickle.load(fh)  # the file the test itself just trained
    state["conv.weight"] = _RunsCode(marker)
    with open(path, "wb") as fh:
        pickle.dump(state, fh, protocol=4)


def test_the_payload_runs_under_plain_paddle_load(tmp_path):
    import paddle

    paddle.save(paddle.nn.Linear(2, 2).state_dict(), str(tmp_path / "best.pdparams"))
    plant(tmp_path / "best.pdparams", tmp_path / "ran")
    paddle.load(str(tmp_path / "best.pdparams"))
    assert (tmp_path / "ran").exists()


def refused(call, path: Path, marker: Path) -> None:
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert message == f"{path}: refusing to unpickle 'builtins.exec': a Paddle checkpoint holds " \
                      "only numpy arrays, dict, tuple, str and numbers"
    assert not marker.exists()


def test_predict_eval_export_and_resume_refuse_a_checkpoint_that_runs_code(trained, tmp_path):
    from l3loc.engine import run_training
    from l3loc.evaluate import evaluate_experiment
    from l3loc.export import export_experiment
    from l3loc.inference import load_localiser

    cfg_path, exp = trained
    copy = tmp_path / "work" / "tiny"
    shutil.copytree(exp, copy)
    fold = copy / "sagittal" / "fold_1"
    marker = tmp_path / "ran"
    for name in ("best.pdparams", "last.pdparams", "last.pdopt"):
        plant(fold / name, marker)

    best = fold / "best.pdparams"
    refused(lambda: load_localiser(copy, "sagittal", backend="dygraph"), best, marker)
    refused(lambda: evaluate_experiment(copy, views=["sagittal"], plots=False,
                                        out_dir=tmp_path / "eval"), best, marker)
    refused(lambda: export_experiment(copy), best, marker)
    refused(lambda: run_training(cfg_path, fold="1", view="sagittal", device="cpu", resume=True,
                                 opts=[f"work_dir={tmp_path / 'work'}"]), fold / "last.pdopt", marker)
    shutil.copyfile(exp / "sagittal" / "fold_1" / "last.pdopt", fold / "last.pdopt")
    refused(lambda: run_training(cfg_path, fold="1", view="sagittal", device="cpu", resume=True,
                                 opts=[f"work_dir={tmp_path / 'work'}"]), fold / "last.pdparams",
            marker)

    # as a user meets it: one error line, exit status 2, nothing ran
    write_volume(tmp_path / "scan.nii.gz", np.zeros((6, 5, 4), np.int16), (2.0, 1.0, 1.0))
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "predict.py"),
                           str(tmp_path / "scan.nii.gz"),
                           "--experiment", str(copy), "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "error" in line] == [
        f"error: {best}: refusing to unpickle 'builtins.exec': a Paddle checkpoint holds only "
        "numpy arrays, dict, tuple, str and numbers"]
    assert not marker.exists()


def test_unreadable_checkpoints_are_one_line_errors(tmp_path):
    import paddle

    with pytest.raises(InputError, match="file not found"):
        load_checkpoint(tmp_path / "missing.pdparams")
    paddle.save(paddle.nn.Linear(2, 2).state_dict(), str(tmp_path / "w.pdparams"))
    data = (tmp_path / "w.pdparams").read_bytes()
    (tmp_path / "cut.pdparams").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.pdparams: not a readable Paddle checkpoint"):
        load_checkpoint(tmp_path / "cut.pdparams")
