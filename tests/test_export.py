"""export: inference models per fold; the paddle.inference predictor gives the dygraph maps and
rows; existing exports are not overwritten silently."""
import json

import numpy as np
import pytest

from l3loc.errors import InputError
from l3loc.export import export_experiment
from l3loc.inference import PredictorMaps, load_localiser
from l3loc.io.volume import read_volume, write_volume
from l3loc.predict import predict_volume
from l3loc.runs import sha256, write_decision
from test_inference import make_run
from test_predict import SPACING, Z_FIRST, phantom


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("run"), views=("frontal", "sagittal"), folds=(1, 2),
                    opts=["model.base_channels=8"])
    manifest = export_experiment(root)
    return root, manifest


def test_export_writes_every_fold(exported):
    root, manifest = exported
    assert manifest["views"] == {"frontal": [1, 2], "sagittal": [1, 2]}
    for view in ("frontal", "sagittal"):
        for k in (1, 2):
            d = root / "export" / view / f"fold_{k}"
            assert {p.name for p in d.iterdir()} == {"model.json", "model.pdiparams", "config.yaml"}
    assert json.loads((root / "export" / "export.json").read_text())["views"]["sagittal"] == [1, 2]
    with pytest.raises(InputError, match="--overwrite"):
        export_experiment(root, views=["sagittal"], folds=[1])


def test_predictor_matches_dygraph_maps_and_rows(exported, tmp_path):
    root, _ = exported
    fast = load_localiser(root, "fused")  # auto: the export is there, so the predictor
    slow = load_localiser(root, "fused", backend="dygraph")
    assert fast.backend == "predictor" and slow.backend == "dygraph"
    assert isinstance(fast.views["frontal"].maps, PredictorMaps)
    rng = np.random.default_rng(1)
    for height in (36, 64):  # two heights through one predictor: the height is dynamic
        image = rng.random((height, 32)).astype(np.float32)
        np.testing.assert_allclose(fast.views["sagittal"].maps.confidence_map(image),
                                   slow.views["sagittal"].maps.confidence_map(image), atol=1e-5)
        # fold by fold too (each fold's own claim on L3 is checked against the ensemble's)
        np.testing.assert_allclose(fast.views["sagittal"].maps.fold_maps(image),
                                   slow.views["sagittal"].maps.fold_maps(image), atol=1e-5)
    ct = read_volume(write_volume(tmp_path / "a.nii.gz", phantom(l3=30), SPACING, Z_FIRST))
    a, b = predict_volume(ct, fast), predict_volume(ct, slow)
    for key in ("frontal_row", "sagittal_row", "status", "l3_slice"):
        assert a[key] == pytest.approx(b[key], abs=1e-3), key


def test_exported_models_load_and_run_without_unpickling(exported, monkeypatch):
    """Unlike a .pdparams, an export holds no pickle (JSON graph, binary tensor stream, both read
    by Paddle's C++ loader): a shared export folder runs no code when opened."""
    import pickle

    root, _ = exported
    d = root / "export" / "sagittal" / "fold_1"
    assert json.loads((d / "model.json").read_text())["base_code"]["magic"] == "pir"
    assert (d / "model.pdiparams").read_bytes()[:1] != b"\x80"  # every pickle starts with PROTO

    def unpickled(*args, **kwargs):
        raise AssertionError("the exported model was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, unpickled)
    loc = load_localiser(root, "sagittal", backend="predictor")
    prob = loc.views["sagittal"].maps.confidence_map(np.zeros((36, 32), np.float32))
    assert prob.shape == (36, 32) and np.isfinite(prob).all()


def test_exported_multi_level_model_matches_dygraph(tmp_path):
    """A model with one channel per level exports its every channel: the predictor's [levels,
    H, W] maps equal the dygraph ones, and prediction's sequence decision matches."""
    from l3loc.levels import LEVELS

    root = make_run(tmp_path / "run", views=("sagittal",), folds=(1,),
                    opts=[f"label.levels=[{','.join(LEVELS)}]"])
    export_experiment(root)
    fast = load_localiser(root, "sagittal")
    slow = load_localiser(root, "sagittal", backend="dygraph")
    assert fast.backend == "predictor"
    image = np.random.default_rng(2).random((44, 32)).astype(np.float32)
    a = fast.views["sagittal"].maps.confidence_map(image)
    assert a.shape == (len(LEVELS), 44, 32)
    np.testing.assert_allclose(a, slow.views["sagittal"].maps.confidence_map(image), atol=1e-5)
    ct = read_volume(write_volume(tmp_path / "a.nii.gz", phantom(l3=30), SPACING, Z_FIRST))
    ra, rb = predict_volume(ct, fast), predict_volume(ct, slow)
    for key in ("status", "sagittal_row", "sequence_confidence", "t12_z_mm", "s1_z_mm"):
        assert ra[key] == pytest.approx(rb[key], abs=1e-3, nan_ok=True), key


def test_export_records_weights_and_decision_and_decides_as_its_run(tmp_path):
    """--model <export> and --experiment give the same decision on the same scan: the
    threshold, view and decoder travel with the export (decision.json)."""
    root = make_run(tmp_path / "run", views=("frontal", "sagittal"), folds=(1,))
    write_decision(root / "eval", {"frontal": {"threshold": 0.2}, "sagittal": {"threshold": 0.9},
                                   "fused": {"threshold": 0.4}}, "sagittal", "argmax", {})
    manifest = export_experiment(root, tmp_path / "standalone")
    assert manifest["weights"]["sagittal/fold_1"] == sha256(root / "sagittal/fold_1/best.pdparams")
    from_run = load_localiser(root, backend="dygraph")
    from_export = load_localiser(tmp_path / "standalone")
    assert from_export.backend == "predictor"
    for loc in (from_run, from_export):
        assert list(loc.views) == ["sagittal"] and loc.threshold == pytest.approx(0.9)
        assert loc.views["sagittal"].cfg["eval"]["decoder"] == "argmax"
    ct = read_volume(write_volume(tmp_path / "a.nii.gz", phantom(l3=30), SPACING, Z_FIRST))
    a, b = predict_volume(ct, from_run), predict_volume(ct, from_export)
    for key in ("status", "l3_slice", "sagittal_row"):
        assert a[key] == pytest.approx(b[key], abs=1e-3), key


def test_retrained_fold_makes_its_old_export_refused_or_warned(tmp_path):
    import paddle

    root = make_run(tmp_path, views=("sagittal",), folds=(1, 2))
    export_experiment(root)
    assert load_localiser(root, "sagittal").backend == "predictor"  # current: used
    weights = root / "sagittal" / "fold_2" / "best.pdparams"
    state = paddle.load(str(weights))
    paddle.save({k: v * 2 for k, v in state.items()}, str(weights))  # fold 2 retrained
    with pytest.raises(InputError, match=r"export: exported from weights that changed since "
                                         r"\(sagittal/fold_2 retrained"):
        load_localiser(root, "sagittal")
    loc = load_localiser(root, "sagittal", allow_stale_export=True)
    assert loc.backend == "predictor" and any("stale export" in n for n in loc.notes)
    assert load_localiser(root, "sagittal", folds=[1]).backend == "predictor"  # fold 1 unchanged
    assert load_localiser(root, "sagittal", backend="dygraph").backend == "dygraph"


def test_fold_weights_come_from_a_run_s_fold_or_its_export_and_refuse_another_net(exported, tmp_path):
    """train.init_from's loader: a net of another seed takes the fold's weights from best.pdparams
    or from the export (matched by name, then checked on an image); a net of another width, or a
    folder with neither, is refused with the folder named."""
    import paddle

    from l3loc.config import load_config
    from l3loc.export import fold_weights
    from l3loc.io.checkpoint import load_checkpoint
    from l3loc.models import build_net
    from l3loc.validation import predict_map

    root, _ = exported
    cfg = load_config(root / "sagittal" / "fold_1" / "config.yaml")
    image = np.random.default_rng(2).random((64, 32)).astype(np.float32)
    want = load_localiser(root, "sagittal", folds=[1], backend="dygraph").views["sagittal"].maps.confidence_map(image)
    for source in (root / "sagittal" / "fold_1", root / "export" / "sagittal" / "fold_1"):
        paddle.seed(99)
        net = build_net(cfg)
        net.eval()
        assert not np.allclose(predict_map(net, image), want, atol=1e-4)
        fold_weights(source, net)
        np.testing.assert_allclose(predict_map(net, image), want, atol=1e-5)
    best = load_checkpoint(root / "sagittal" / "fold_1" / "best.pdparams")
    np.testing.assert_array_equal(net.state_dict()["stem.block.0.weight"].numpy(), best["stem.block.0.weight"].numpy())
    wider = build_net({**cfg, "model": {**cfg["model"], "base_channels": 16}})
    for source in (root / "sagittal" / "fold_1", root / "export" / "sagittal" / "fold_1"):
        with pytest.raises(InputError, match="not weights of this network"):
            fold_weights(source, wider)
    with pytest.raises(InputError, match="holds neither"):
        fold_weights(tmp_path, build_net(cfg))
