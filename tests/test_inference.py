"""inference: fold ensembles average sigmoid maps; run folders load with clear errors; view and
threshold defaults."""
import numpy as np
import pytest

from l3loc.config import load_config, save_config
from l3loc.errors import InputError
from l3loc.models import build_net
from l3loc.inference import DygraphMaps, FunctionMaps, function_localiser, load_localiser
from l3loc.runs import default_view, write_decision

OPTS = ["preprocess.spacing_mm=2.0", "preprocess.canvas=[32,32]",
        "model.base_channels=4", "model.depth=2"]


def make_run(root, views=("sagittal",), folds=(1, 2), opts=()):
    """A run folder with random-weight folds (seeded per fold), as the engine lays it out."""
    import paddle

    cfg = load_config(None, OPTS + list(opts))
    for view in views:
        for k in folds:
            paddle.seed(k)
            net = build_net(cfg)
            d = root / view / f"fold_{k}"
            d.mkdir(parents=True)
            paddle.save(net.state_dict(), str(d / "best.pdparams"))
            save_config(cfg, d / "config.yaml")
    return root


def test_ensemble_is_the_mean_of_the_folds_sigmoid_maps(tmp_path):
    from l3loc.validation import predict_map

    loc = load_localiser(make_run(tmp_path), "sagittal", backend="dygraph")
    maps = loc.views["sagittal"].maps
    assert isinstance(maps, DygraphMaps) and len(maps.nets) == 2
    image = np.random.default_rng(0).random((38, 32)).astype(np.float32)  # 38 is not a multiple of 4
    prob = maps.confidence_map(image)
    expected = (predict_map(maps.nets[0], image) + predict_map(maps.nets[1], image)) / 2
    assert prob.shape == (38, 32)
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    assert not np.allclose(predict_map(maps.nets[0], image), predict_map(maps.nets[1], image))
    folds = maps.fold_maps(image)   # each fold's own map, in the order of the folds
    assert loc.views["sagittal"].folds == (1, 2) and len(folds) == 2
    np.testing.assert_allclose(folds[1], predict_map(maps.nets[1], image), atol=1e-6)
    one = load_localiser(tmp_path, "sagittal", folds=[2], backend="dygraph")
    np.testing.assert_allclose(one.views["sagittal"].maps.confidence_map(image),
                               predict_map(maps.nets[1], image), atol=1e-6)


def test_clear_errors(tmp_path):
    make_run(tmp_path)
    with pytest.raises(InputError, match=r"fold\(s\) \[3\] not found"):
        load_localiser(tmp_path, "sagittal", folds=[3])
    with pytest.raises(InputError, match="no frontal folds"):
        load_localiser(tmp_path, "frontal")
    with pytest.raises(InputError, match="no exported model"):
        load_localiser(tmp_path, "sagittal", backend="predictor")
    with pytest.raises(InputError, match="unknown backend"):
        load_localiser(tmp_path, "sagittal", backend="onnx")
    other = load_config(None, OPTS + ["preprocess.spacing_mm=3.0"])
    save_config(other, tmp_path / "sagittal" / "fold_2" / "config.yaml")
    with pytest.raises(InputError, match="'preprocess' differs from fold 1"):
        load_localiser(tmp_path, "sagittal")
    with pytest.raises(InputError, match="no trained or exported folds"):
        default_view(tmp_path / "nothing")


def test_default_view_and_threshold(tmp_path):
    make_run(tmp_path, views=("sagittal",), folds=(1,))
    assert default_view(tmp_path) == "sagittal"
    loc = load_localiser(tmp_path)
    assert loc.threshold == 0.5 and loc.threshold_source == "config eval.threshold"
    assert any("no eval/decision.json" in n for n in loc.notes)
    make_run(tmp_path, views=("frontal",), folds=(1,))
    assert default_view(tmp_path) == "fused"
    write_decision(tmp_path / "eval", {"frontal": {"threshold": 0.2}, "sagittal": {"threshold": 0.31},
                                       "fused": {"threshold": 0.25}}, "sagittal", "argmax", {})
    assert default_view(tmp_path) == "sagittal"
    loc = load_localiser(tmp_path)
    assert list(loc.views) == ["sagittal"] and loc.threshold == pytest.approx(0.31)
    assert loc.threshold_source == "eval/decision.json"
    assert loc.views["sagittal"].cfg["eval"]["decoder"] == "argmax"  # the decoder evaluation measured
    assert load_localiser(tmp_path, "fused").threshold == pytest.approx(0.25)
    assert load_localiser(tmp_path, threshold=0.7).threshold == 0.7
    write_decision(tmp_path / "eval", {"frontal": {"threshold": 0.2}}, "frontal", "profile", {})
    loc = load_localiser(tmp_path, "sagittal")   # a decision without this view's threshold
    assert loc.threshold == 0.5 and any("no evaluated threshold for the sagittal view" in n for n in loc.notes)


def test_run_evaluated_before_decision_json_keeps_its_threshold_and_view(tmp_path):
    """Older runs have only eval/summary.csv: its lowest mean error and thresholds still count."""
    make_run(tmp_path, views=("frontal", "sagittal"), folds=(1,))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.csv").write_text(  # evaluation's layout (l3loc.evaluate)
        "view,decoder,mean_mm,median_mm,threshold\nfrontal,profile,4.0,1.0,0.2\n"
        "sagittal,profile,2.5,1.2,0.31\nfused,profile,3.0,0.9,0.25\n")
    # the lowest mean error decides, not the lowest median (which hides gross failures)
    assert default_view(tmp_path) == "sagittal"
    assert load_localiser(tmp_path).threshold == pytest.approx(0.31)
    assert load_localiser(tmp_path, "fused").threshold == pytest.approx(0.25)


def test_function_maps_check_the_shape():
    cfg = load_config(None, OPTS)
    loc = function_localiser(lambda im: im * 0.5, cfg, views=("frontal",), threshold=0.2)
    assert loc.threshold == 0.2 and loc.backend == "function"
    with pytest.raises(ValueError, match="shape"):
        FunctionMaps(lambda im: im[:-1]).confidence_map(np.zeros((8, 4), np.float32))
