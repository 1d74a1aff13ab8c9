"""One rank of a data-parallel training for tests/test_distributed.py (not a test itself).

    python -m paddle.distributed.launch --nproc_per_node 2 tests/dp_train.py OUT l3loc-train-args...

Runs ``l3loc train`` with the given arguments, as ``tools/train.py`` would, and records for the
test what cannot be seen from outside: a digest of the rank's trained parameters after every optimizer
step and every file the rank wrote or deleted, in ``OUT/rank_<r>.json``.
"""
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import l3loc  # noqa: E402,F401  (before paddle)
import paddle  # noqa: E402

from l3loc import atomic, cli, fold_folder  # noqa: E402

record = {"digests": [], "writes": []}
real_step, real_atomic, real_rmtree = paddle.optimizer.AdamW.step, atomic.atomic_path, shutil.rmtree


def step(self):
    real_step(self)
    h = hashlib.sha1()
    for p in self._parameter_list:
        if not p.stop_gradient:  # the trained ones (BatchNorm's running statistics are not)
            h.update(p.numpy().tobytes())
    record["digests"].append(h.hexdigest())


def recorded_atomic_path(path, *args, **kwargs):
    record["writes"].append(str(path))
    return real_atomic(path, *args, **kwargs)


def recorded_rmtree(path, *args, **kwargs):
    record["writes"].append(f"rmtree {path}")
    return real_rmtree(path, *args, **kwargs)


paddle.optimizer.AdamW.step = step
atomic.atomic_path = fold_folder.atomic_path = recorded_atomic_path
shutil.rmtree = recorded_rmtree
status = cli.main(["train", *sys.argv[2:]])
rank = os.environ.get("PADDLE_TRAINER_ID", "0")
(Path(sys.argv[1]) / f"rank_{rank}.json").write_text(json.dumps(record))
sys.exit(status)
