"""weight_average: fine-tuning rounds averaged fold by fold into one net per fold that loads and
predicts like any run; mismatched rounds and existing outputs refused."""
import json

import numpy as np
import pytest

from l3loc.cli import main
from l3loc.config import load_config, save_config
from l3loc.errors import InputError
from l3loc.inference import load_localiser
from l3loc.io.checkpoint import load_checkpoint
from l3loc.models import build_net
from l3loc.weight_average import average_runs

OPTS = ["preprocess.spacing_mm=2.0", "preprocess.canvas=[32,32]", "model.base_channels=4",
        "model.depth=2"]


def make_round(root, seed, folds=(1, 2), opts=()):
    """A run folder whose folds hold random nets (seeded by ``seed`` and the fold)."""
    import paddle

    cfg = load_config(None, OPTS + list(opts))
    for k in folds:
        paddle.seed(100 * seed + k)
        d = root / "frontal" / f"fold_{k}"
        d.mkdir(parents=True)
        paddle.save(build_net(cfg).state_dict(), str(d / "best.pdparams"))
        save_config(cfg, d / "config.yaml")
    (root / "splits.json").write_text(json.dumps({"k": 2, "seed": seed}))
    return root


def test_every_parameter_is_the_mean_of_the_rounds_and_the_average_loads_as_a_run(tmp_path):
    a, b, c = (make_round(tmp_path / n, s) for n, s in (("a", 1), ("b", 2), ("c", 3)))
    make_round(tmp_path / "d", 4, folds=(1, 2, 3))   # fold 3 only here: not averaged
    assert average_runs([a, b, c, tmp_path / "d"], tmp_path / "avg", "frontal") == [1, 2]
    for k in (1, 2):
        parts = [load_checkpoint(r / "frontal" / f"fold_{k}" / "best.pdparams")
                 for r in (a, b, c, tmp_path / "d")]
        mean = load_checkpoint(tmp_path / "avg" / "frontal" / f"fold_{k}" / "best.pdparams")
        assert list(mean) == list(parts[0])
        for key in mean:
            expected = np.mean([p[key].numpy() for p in parts], axis=0)
            np.testing.assert_allclose(mean[key].numpy(), expected, rtol=1e-6, atol=1e-7)
        assert any(not np.allclose(parts[0][key].numpy(), parts[1][key].numpy()) for key in mean)
        record = json.loads((tmp_path / "avg" / "frontal" / f"fold_{k}" / "averaged_from.json").read_text())
        assert len(record["rounds"]) == len(record["sha256"]) == 4
    assert json.loads((tmp_path / "avg" / "splits.json").read_text())["seed"] == 1   # the first round's
    loc = load_localiser(tmp_path / "avg", "frontal", backend="dygraph")
    image = np.random.default_rng(0).random((36, 32)).astype(np.float32)
    assert loc.views["frontal"].folds == (1, 2)
    assert loc.views["frontal"].maps.confidence_map(image).shape == (36, 32)


def test_rounds_of_other_networks_or_an_existing_output_are_refused(tmp_path):
    a = make_round(tmp_path / "a", 1)
    other = make_round(tmp_path / "other", 2, opts=["model.base_channels=8"])
    with pytest.raises(InputError, match="'model' differs"):
        average_runs([a, other], tmp_path / "avg", "frontal")
    with pytest.raises(InputError, match="two or more"):
        average_runs([a], tmp_path / "avg", "frontal")
    with pytest.raises(InputError, match="no sagittal fold"):
        average_runs([a, a], tmp_path / "avg", "sagittal")
    b = make_round(tmp_path / "b", 2)
    assert main(["average", "--out", str(tmp_path / "avg"), str(a), str(b)]) == 0
    before = (tmp_path / "avg" / "frontal" / "fold_1" / "best.pdparams").read_bytes()
    assert main(["average", "--out", str(tmp_path / "avg"), str(a), str(a)]) != 0   # exists
    assert (tmp_path / "avg" / "frontal" / "fold_1" / "best.pdparams").read_bytes() == before
