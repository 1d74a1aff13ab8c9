"""Training: every run file is written, resume repeats the numbers, clear errors, the net can learn."""
import csv

import numpy as np
import pytest
import yaml

from l3loc.config import load_config
from l3loc.engine import eta_text, lr_at, run_training, train_fold
from l3loc.runs import FoldRun
from l3loc.errors import InputError
from l3loc.io.checkpoint import load_checkpoint
from l3loc.io.npz import L3Dataset, write_l3_npz


def marker_dataset(path, n=8, seed=0, label_offset=0):
    """MIP-like images (2 mm rows) with a bright bar at the L3 row: learnable in a few steps.

    The bar is a stand-in for anatomy: these tests check that the pipeline can learn and that
    its files and numbers are right, not how well it counts vertebrae.
    """
    rng = np.random.default_rng(seed)
    images, rows = [], []
    for _ in range(n):
        height = int(rng.integers(60, 110))
        row = float(rng.integers(8, height - 8))
        img = rng.normal(0, 40, (height, 48)).astype(np.float32)
        img[int(row) - 1:int(row) + 2, 16:32] = 1200.0
        images.append(img)
        rows.append(row)
    ds = L3Dataset([f"case{i}" for i in range(n)], images, [im.copy() for im in images],
                   np.array([[2.0, 2.0, 2.0]] * n), {"a1": np.array(rows) + label_offset})
    write_l3_npz(path, ds)
    return path


def tiny_config(tmp_path, *opts):
    src = marker_dataset(tmp_path / "d.npz")
    cfg_path = tmp_path / "tiny.yml"
    cfg_path.write_text(yaml.safe_dump({
        "work_dir": str(tmp_path / "work"),
        "data": {"source": str(src), "cache_dir": str(tmp_path / "cache")},
        "preprocess": {"spacing_mm": 2.0, "canvas": [32, 32]},
        "model": {"type": "UNet", "base_channels": 4, "depth": 2},
        "train": {"epochs": 2, "iters_per_epoch": 1, "batch_size": 2, "folds": 2, "lr": 0.01},
    }))
    return cfg_path


def test_smoke_two_steps_write_every_run_file(tmp_path):
    cfg_path = tiny_config(tmp_path)
    (result,) = run_training(cfg_path, fold="2", view="sagittal", device="cpu", command="test")
    run = FoldRun(tmp_path / "work" / "tiny" / "sagittal" / "fold_2")
    for path in (run.log, run.best, run.last, run.last_opt, run.val_predictions, run.curves,
                 run.config, run.env):
        assert path.is_file() and path.stat().st_size > 0, path
    with open(run.log) as fh:
        log = list(csv.DictReader(fh))
    assert [r["epoch"] for r in log] == ["0", "1"]
    assert list(log[0]) == ["epoch", "lr", "train_loss", "val_loss", "val_mean_error_mm",
                            "val_median_error_mm", "seconds"]
    with open(run.val_predictions) as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == 4  # fold 2 of 2 over 8 cases
    saved = load_config(run.config)
    assert saved["experiment"] == "tiny" and saved["train"]["epochs"] == 2
    assert (tmp_path / "work" / "tiny" / "splits.json").is_file()
    assert result["fold"] == 2 and result["view"] == "sagittal"


def test_existing_fold_needs_resume_or_overwrite(tmp_path):
    cfg_path = tiny_config(tmp_path)
    run_training(cfg_path, fold="1", view="frontal", device="cpu")
    with pytest.raises(InputError, match="fold folder exists; use --resume"):
        run_training(cfg_path, fold="1", view="frontal", device="cpu")
    run_training(cfg_path, fold="1", view="frontal", device="cpu", overwrite=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"fold": "3"}, r"--fold: folds must be in 1..2"),
    ({"fold": [1, 3]}, r"--fold: folds must be in 1..2"),
    ({"fold": "0"}, r"--fold: expected 1-based fold numbers"),
    ({"fold": "x"}, r"--fold: expected 1-based fold numbers"),
    ({"view": "axial"}, r"unknown view 'axial'"),
    ({"opts": ["model.type=NoNet"]}, r"unknown models type 'NoNet'|NoNet"),
    ({"opts": ["loss.type=NoLoss"]}, r"NoLoss"),
    ({"opts": ["data.source=/nonexistent/l3.npz"]}, r"/nonexistent/l3.npz"),
])
def test_clear_errors(tmp_path, kwargs, message):
    cfg_path = tiny_config(tmp_path)
    args = {"fold": "1", "view": "sagittal", "device": "cpu", **kwargs}
    with pytest.raises((InputError, ValueError), match=message):
        run_training(cfg_path, **args)


def test_resume_repeats_an_uninterrupted_run(tmp_path):
    cfg_path = tiny_config(tmp_path)
    full = load_config(cfg_path, ["train.epochs=3"])
    full["experiment"] = "full"
    train_fold(full, "sagittal", 1)
    # an interrupted run: the first epoch of the same 3-epoch schedule, then resumed
    part = load_config(cfg_path, ["train.epochs=3"])
    part["experiment"] = "part"
    part_first = dict(part, train={**part["train"], "epochs": 1})
    train_fold(part_first, "sagittal", 1)
    train_fold(part, "sagittal", 1, resume=True)

    def losses(name):
        with open(tmp_path / "work" / name / "sagittal" / "fold_1" / "train_log.csv") as fh:
            return [(r["train_loss"], r["val_loss"], r["val_mean_error_mm"]) for r in csv.DictReader(fh)]

    assert losses("part") == losses("full")
    assert len(losses("full")) == 3
    # more epochs may be asked on resume (above); anything else is refused unless allowed
    changed = dict(part, train={**part["train"], "epochs": 4, "lr": 0.5})
    with pytest.raises(InputError, match=r"config.yaml: --resume with a different config "
                                         r"\(train.lr: 0.01 -> 0.5\); pass --allow-config-change"):
        train_fold(changed, "sagittal", 1, resume=True)
    train_fold(changed, "sagittal", 1, resume=True, allow_config_change=True)
    assert len(losses("part")) == 4
    # the training log is also kept in the fold folder, appended to on resume
    text = (tmp_path / "work" / "part" / "sagittal" / "fold_1" / "train.log").read_text()
    assert text.count("(resumed)") == 2 and "epoch 4/4" in text


def test_init_from_fine_tunes_another_run_s_fold(tmp_path):
    """train.init_from: the fold starts from the named run's weights of the same view and fold
    (at lr 1e-12 its convolutions stay those weights; a fresh run's differ), and a run without that
    fold is refused before anything is written."""
    cfg_path = tiny_config(tmp_path)
    base = load_config(cfg_path)
    base["experiment"] = "base"
    train_fold(base, "sagittal", 1)
    tuned = load_config(cfg_path, [f"train.init_from={tmp_path / 'work' / 'base'}", "train.lr=1e-12", "train.seed=7"])
    tuned["experiment"] = "tuned"
    train_fold(tuned, "sagittal", 1)
    fresh = load_config(cfg_path, ["train.lr=1e-12", "train.seed=7"])
    fresh["experiment"] = "fresh"
    train_fold(fresh, "sagittal", 1)

    def conv(name):
        return load_checkpoint(tmp_path / "work" / name / "sagittal" / "fold_1" / "best.pdparams")["stem.block.0.weight"].numpy()

    np.testing.assert_allclose(conv("tuned"), conv("base"), atol=1e-8)
    assert not np.allclose(conv("fresh"), conv("base"))
    with pytest.raises(InputError, match="fold_2.*holds neither"):
        train_fold(dict(tuned, experiment="tuned2"), "sagittal", 2)
    assert not (tmp_path / "work" / "tuned2" / "sagittal" / "fold_2").exists()


def test_best_epoch_is_chosen_on_the_selection_set(tmp_path):
    # the selection set: other cases (another seed) whose label is 6 rows (12 mm) above the bar,
    # so its errors are not the validation fold's and its best epoch is its own
    shifted = marker_dataset(tmp_path / "select.npz", n=6, seed=1, label_offset=-6)
    cfg_path = tiny_config(tmp_path)
    (result,) = run_training(cfg_path, fold="1", view="sagittal", device="cpu",
                             opts=["train.epochs=3", f"data.select_source={shifted}"])
    run = FoldRun(tmp_path / "work" / "tiny" / "sagittal" / "fold_1")
    log = list(csv.DictReader(open(run.log)))
    select_mean = [float(r["select_mean_error_mm"]) for r in log]
    val_mean = [float(r["val_mean_error_mm"]) for r in log]
    assert all(np.isfinite(select_mean)) and select_mean != val_mean
    assert {"select_median_error_mm", "select_within_10mm"} <= set(log[0])
    assert result["best_epoch"] == 1 + int(np.argmin(select_mean))
    assert "[SELECT]" in (run.root / "train.log").read_text()


def test_eta_text():
    assert [eta_text(s) for s in (0, 35, 240, 3900)] == ["done", "ETA 35 s", "ETA 4 min",
                                                          "ETA 1 h 05 min"]


def test_a_selection_set_without_l3_is_refused_before_training(tmp_path):
    images = [np.zeros((60, 48), np.float32) for _ in range(3)]
    no_l3 = tmp_path / "no_l3.npz"
    write_l3_npz(no_l3, L3Dataset([f"n{i}" for i in range(3)], images, images,
                                  np.array([[2.0, 2.0, 2.0]] * 3), {"a1": np.full(3, np.nan)},
                                  negative=np.ones(3, dtype=bool)))
    cfg_path = tiny_config(tmp_path)
    with pytest.raises(InputError, match="no case with L3 to choose an epoch on"):
        run_training(cfg_path, fold="1", view="sagittal", device="cpu",
                     opts=[f"data.select_source={no_l3}"])
    assert not FoldRun(tmp_path / "work" / "tiny" / "sagittal" / "fold_1").log.exists()


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1.0, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.01, abs=0.01)


def test_net_overfits_four_cases_to_under_2mm(tmp_path):
    """The pipeline can learn at all: train and validate on the same four cases."""
    src = marker_dataset(tmp_path / "four.npz", n=4, seed=3)
    cfg = load_config(None, [
        f"work_dir={tmp_path / 'work'}", f"data.source={src}", f"data.cache_dir={tmp_path / 'c'}",
        "preprocess.spacing_mm=2.0", "preprocess.canvas=[64,32]", "model.base_channels=8",
        "model.depth=2", "train.epochs=1", "train.iters_per_epoch=120", "train.batch_size=4",
        "train.lr=0.01", "train.folds=2", "train.p_positive=1.0", "augment.p=0",
    ])
    cfg["experiment"] = "overfit"
    from l3loc.cache import open_cache
    from l3loc.losses import build_loss
    from l3loc.models import build_model
    from l3loc.validation import validate

    train_fold(cfg, "sagittal", 1)
    run = FoldRun.of(cfg, "sagittal", 1)
    model = build_model(cfg["model"])
    model.set_state_dict(load_checkpoint(run.last))
    dataset = open_cache(cfg, "sagittal")
    _, preds = validate(model, build_loss(cfg["loss"]), dataset, range(len(dataset)), cfg, 0.0)
    errors = [p["error_mm"] for p in preds]
    assert max(errors) < 2.0, errors


ALL_LEVELS = "label.levels=[T12, L1, L2, L3, L4, L5, S1]"


def test_every_level_trains_end_to_end_on_phantoms(tmp_path):
    from l3loc.cache import open_cache
    from l3loc.inference import load_fold_net
    from l3loc.synth.writers import generate_dataset
    from l3loc.training_batches import training_batch
    from l3loc.validation import predict_map

    src = generate_dataset(tmp_path / "synth", 4, seed=3, preset="tiny", workers=1, n_dicom=0)
    cfg_path = tiny_config(tmp_path)
    opts = [f"data.source={src}", "preprocess.canvas=[128, 64]", ALL_LEVELS]
    (result,) = run_training(cfg_path, fold="1", view="sagittal", device="cpu", opts=opts)
    cfg = load_config(FoldRun(tmp_path / "work" / "tiny" / "sagittal" / "fold_1").config)
    net = load_fold_net(FoldRun(tmp_path / "work" / "tiny" / "sagittal" / "fold_1").root, cfg)
    assert predict_map(net, np.zeros((40, 64), np.float32)).shape == (7, 40, 64)
    # the targets: one band per level, as far apart as the cached (ground-truth) rows
    ds = open_cache(cfg, "sagittal")
    cfg["train"]["p_positive"] = 1.0
    case = int(np.argmax(np.isfinite(ds.level_rows_px).sum(axis=1)))
    images, targets = training_batch(ds, [case], [np.random.default_rng(0)], cfg, 0.0,
                                     augment=False)
    assert images.shape == (1, 1, 128, 64) and targets.shape == (1, 7, 128, 64)
    want = ds.label_rows(case, tuple(cfg["label"]["levels"]))
    profiles = targets[0, :, :, 32].astype(np.float64)
    inside = [c for c in range(7) if profiles[c, 0] == 0 and profiles[c, -1] == 0 and profiles[c].sum()]
    assert len(inside) >= 3 and 3 in inside
    centres = {c: (profiles[c] * np.arange(128)).sum() / profiles[c].sum() for c in inside}
    for c in inside:
        assert centres[c] - centres[3] == pytest.approx(want[c] - want[3], abs=1e-3)
    assert np.all(np.diff([centres[c] for c in inside]) > 0)   # cranial first


def test_levels_need_level_labels(tmp_path):
    cfg_path = tiny_config(tmp_path)
    with pytest.raises(InputError, match="needs per-level labels"):
        run_training(cfg_path, fold="1", view="sagittal", device="cpu", opts=[ALL_LEVELS])
    with pytest.raises(InputError, match="must include L3"):
        run_training(cfg_path, fold="1", view="sagittal", device="cpu",
                     opts=["label.levels=[L1]"])
