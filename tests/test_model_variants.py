"""The UNet family and the 1-D row head: output shape for several heights, stride, deep
supervision, a few training steps through the engine, export + paddle.inference predictor equal
to dygraph, and the row head's full-width target."""
import l3loc  # noqa: F401  (sets the MKL/OpenMP variables before paddle loads)
import numpy as np
import paddle
import pytest

from l3loc.config import load_config
from l3loc.engine import run_training
from l3loc.training_batches import training_batch
from l3loc.runs import FoldRun
from l3loc.export import export_experiment
from l3loc.inference import load_localiser
from l3loc.losses import BCEWithLogits, supervised_loss
from l3loc.models import MODELS, build_model, build_net, net_stride, target_col_range
from test_engine import tiny_config
from test_inference import make_run

# every registered network with its options worth covering; extra keys are model config entries
VARIANTS = [
    {"type": "AttentionUNet"},
    {"type": "UNetPlusPlus"},
    {"type": "UNetPlusPlus", "deep_supervision": True},
    {"type": "UNet3Plus"},
    {"type": "UNet3Plus", "deep_supervision": True},
    {"type": "U2Net"},
    {"type": "U2Net", "deep_supervision": False},
    {"type": "RowHead"},
    {"type": "RowHead", "pool": "mean", "upsample": "bilinear"},
    {"type": "UNet", "upsample": "bilinear"},
]
IDS = ["-".join(str(v) for v in variant.values()) for variant in VARIANTS]


def test_every_registered_model_is_covered():
    assert {v["type"] for v in VARIANTS} | {"UNet"} == set(MODELS.names)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_output_shape_for_several_heights_and_stride(variant):
    paddle.seed(0)
    net = build_model({**variant, "base_channels": 4, "depth": 3, "out_channels": 2})
    assert net.stride == 8
    for height in (8, 24, 40):
        x = paddle.rand([2, 1, height, 16])
        net.eval()
        assert list(net(x).shape) == [2, 2, height, 16]
        net.train()
        out = net(x)
        outs = out if isinstance(out, list) else [out]
        deep = variant.get("deep_supervision", variant["type"] == "U2Net")
        assert (len(outs) > 1) == deep
        assert all(list(o.shape) == [2, 2, height, 16] for o in outs)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(paddle.rand([1, 1, 20, 16]))


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_initial_output_near_prior(variant):
    paddle.seed(0)
    net = build_model({**variant, "base_channels": 4, "depth": 2, "prior_prob": 0.01})
    net.eval()
    probs = paddle.nn.functional.sigmoid(net(paddle.zeros([1, 1, 16, 16])))
    assert float(probs.mean()) == pytest.approx(0.01, rel=0.3)


def test_row_head_map_is_constant_along_rows_and_pools_by_its_choice():
    paddle.seed(0)
    x = paddle.rand([1, 1, 16, 16])
    maps = {}
    for pool in ("max", "mean"):
        paddle.seed(0)
        net = build_model({"type": "RowHead", "base_channels": 4, "depth": 2, "pool": pool})
        net.eval()
        maps[pool] = net(x).numpy()[0, 0]
        np.testing.assert_array_equal(maps[pool], maps[pool][:, :1].repeat(16, axis=1))
    assert not np.allclose(maps["max"], maps["mean"])


def test_deep_supervision_loss_is_the_mean_of_the_heads_losses():
    loss_fn = BCEWithLogits()
    t = paddle.zeros([1, 1, 4, 4])
    a, b = paddle.full([1, 1, 4, 4], -1.0), paddle.full([1, 1, 4, 4], 2.0)
    expected = (float(loss_fn(a, t)) + float(loss_fn(b, t))) / 2
    assert float(supervised_loss(loss_fn, [a, b], t)) == pytest.approx(expected)
    assert float(supervised_loss(loss_fn, a, t)) == pytest.approx(float(loss_fn(a, t)))


def _model_opts(variant):
    return [f"model.{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in variant.items()]


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_trains_a_few_steps_through_the_engine(tmp_path, variant):
    cfg_path = tiny_config(tmp_path)
    (result,) = run_training(cfg_path, fold="1", view="sagittal", device="cpu",
                             opts=_model_opts(variant) + ["train.iters_per_epoch=2"])
    run = FoldRun(tmp_path / "work" / "tiny" / "sagittal" / "fold_1")
    cfg = load_config(run.config)
    assert cfg["model"]["type"] == variant["type"]
    paddle.seed(cfg["train"]["seed"])  # the engine's initial weights, to see that training moved them
    init = build_net(cfg).state_dict()
    trained = paddle.load(str(run.last))
    assert any(not np.allclose(init[k].numpy(), trained[k].numpy()) for k in init)
    assert np.isfinite(result["val_mean_error_mm"])


def test_row_head_target_is_the_band_row_profile_over_every_column(tmp_path):
    from l3loc.cache import open_cache

    cfg_path = tiny_config(tmp_path)
    cfg = load_config(cfg_path, ["model.type=RowHead"])
    assert target_col_range(cfg, (0.35, 0.65)) == (0.0, 1.0)
    assert target_col_range(load_config(cfg_path), (0.35, 0.65)) == (0.35, 0.65)
    dataset = open_cache(cfg, "sagittal")
    rngs = [np.random.default_rng(k) for k in range(2)]
    _, targets = training_batch(dataset, [0, 1], rngs, cfg, 0.0, augment=False)
    assert targets.max() == 1.0
    np.testing.assert_array_equal(targets, targets[..., :1].repeat(targets.shape[-1], axis=-1))


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_export_and_predictor_match_dygraph(tmp_path, variant):
    root = make_run(tmp_path / "run", folds=(1,), opts=_model_opts(variant))
    export_experiment(root)
    fast = load_localiser(root, "sagittal")
    slow = load_localiser(root, "sagittal", backend="dygraph")
    assert fast.backend == "predictor" and slow.backend == "dygraph"
    assert fast.views["sagittal"].maps.stride == net_stride(slow.views["sagittal"].cfg) == 4
    rng = np.random.default_rng(1)
    for height in (36, 64):  # not multiples of the stride: both pad the rows
        image = rng.random((height, 32)).astype(np.float32)
        np.testing.assert_allclose(fast.views["sagittal"].maps.confidence_map(image),
                                   slow.views["sagittal"].maps.confidence_map(image), atol=1e-5)
