"""UNet shapes, parameter counts (hand-counted), the model registry and its errors."""
import l3loc  # noqa: F401  (sets the MKL/OpenMP variables before paddle loads)
import paddle
import pytest

from l3loc.models import MODELS, UNet, build_model
from l3loc.registry import Registry


def n_trainable(layer):
    return sum(int(p.size) for p in layer.parameters() if not p.stop_gradient)


@pytest.mark.parametrize("upsample", ["transpose", "bilinear"])
@pytest.mark.parametrize("depth,size", [(2, (8, 12)), (3, (16, 40)), (4, (48, 32))])
def test_output_has_input_size_and_one_channel(upsample, depth, size):
    paddle.seed(0)
    net = UNet(in_channels=1, base_channels=4, depth=depth, upsample=upsample)
    net.eval()
    x = paddle.rand([2, 1, *size])
    assert list(net(x).shape) == [2, 1, *size]
    assert net.stride == 2 ** depth


def test_two_input_channels_for_stacked_views():
    net = UNet(in_channels=2, base_channels=4, depth=2)
    assert list(net(paddle.rand([1, 2, 8, 8])).shape) == [1, 1, 8, 8]


def test_size_not_multiple_of_stride_is_rejected():
    net = UNet(base_channels=4, depth=3)
    with pytest.raises(ValueError, match="multiples of 8"):
        net(paddle.rand([1, 1, 16, 20]))


def test_parameter_count_hand_counted():
    # base 2, depth 1. stem DoubleConv(1,2): convs 1*2*9 + 2*2*9 (no bias), 2 BN x 2 (scale,
    # shift) = 18+36+8 = 62; down DoubleConv(2,4): 2*4*9 + 4*4*9 + 2*8 = 232; Up: transposed
    # conv 4*2*2*2 + 2 = 34, DoubleConv(4,2): 4*2*9 + 2*2*9 + 2*4 = 116; head 2*1 + 1 = 3.
    assert n_trainable(UNet(base_channels=2, depth=1, upsample="transpose")) == 62 + 232 + 34 + 116 + 3
    # bilinear: a 1x1 conv 4*2 + 2 = 10 instead of the transposed conv's 34
    assert n_trainable(UNet(base_channels=2, depth=1, upsample="bilinear")) == 62 + 232 + 10 + 116 + 3


def test_parameter_count_scales_with_square_of_base_channels():
    counts = {b: n_trainable(UNet(base_channels=b)) for b in (4, 8, 16)}
    # weights grow as base**2; the (linear) BN and bias terms keep the ratio just under 4
    assert 3.9 < counts[8] / counts[4] < 4.0
    assert 3.95 < counts[16] / counts[8] < 4.0


def test_initial_output_near_prior():
    paddle.seed(0)
    net = UNet(base_channels=4, depth=2, prior_prob=0.01)
    net.eval()  # BN running stats are 0/1 at init: eval output is the bias plus a small term
    probs = paddle.nn.functional.sigmoid(net(paddle.zeros([1, 1, 8, 8])))
    assert float(probs.mean()) == pytest.approx(0.01, rel=0.2)


def test_build_model_from_config():
    net = build_model({"type": "UNet", "base_channels": 4, "depth": 2, "upsample": "bilinear"})
    assert isinstance(net, UNet) and "UNet" in MODELS.names


def test_build_model_unknown_type_lists_known():
    with pytest.raises(ValueError, match=r"unknown models type 'UNett'.*known: AttentionUNet, "
                                         r"RowHead, U2Net, UNet, UNet3Plus, UNetPlusPlus"):
        build_model({"type": "UNett"})


def test_build_model_unknown_argument_named():
    with pytest.raises(ValueError, match=r"'base_channel'.*accepted: in_channels, base_channels"):
        build_model({"type": "UNet", "base_channel": 8})


def test_build_model_bad_values():
    with pytest.raises(ValueError, match="upsample"):
        build_model({"type": "UNet", "upsample": "nearest"})
    with pytest.raises(ValueError, match="depth"):
        build_model({"type": "UNet", "depth": 0})


def test_registry_basics():
    reg = Registry("things")

    @reg.add
    def plus(a, b=1):
        return a + b

    reg.add(lambda **kw: kw, name="anything")
    assert reg.build({"type": "plus", "a": 2}) == 3
    assert reg.build({"type": "anything", "x": 1}) == {"x": 1}  # **kwargs accepts any key
    assert reg.names == ["anything", "plus"] and "plus" in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.add(plus)
    with pytest.raises(ValueError, match="needs a 'type'"):
        reg.build({"a": 1})
    cfg = {"type": "plus", "a": 1}
    reg.build(cfg)
    assert cfg == {"type": "plus", "a": 1}  # not modified
