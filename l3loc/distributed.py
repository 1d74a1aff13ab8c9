"""Data-parallel training under Paddle's own launcher, and the shares it splits work into.

    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py --fold 1 ...

The launcher starts one process per device (or N CPU processes, which talk through gloo) and
tells each its rank through ``PADDLE_TRAINER_ID`` / ``PADDLE_TRAINERS_NUM``. Without it every
function here is the identity of a one-process world, so the training code has one path.

How the work is split (see :func:`l3loc.engine.train_fold`): ``train.batch_size`` is the global
batch of one step; rank ``r`` of ``N`` takes positions ``r*B/N .. (r+1)*B/N`` of it, so in every
epoch the ranks see disjoint shares of the same permutation and their union is exactly what one
process sees. Gradients are averaged by ``paddle.DataParallel``; BatchNorm's running statistics
(buffers, which DataParallel does not touch) are averaged at the end of each epoch, or kept in
step by SyncBatchNorm (``train.sync_bn``, GPUs only: Paddle has no CPU kernel for it).
"""
from __future__ import annotations

import logging
import os
from typing import Sequence, TypeVar

from l3loc.errors import InputError

log = logging.getLogger("l3loc")

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, number of ranks) as the launcher set them; (0, 1) outside the launcher."""
    return (int(os.environ.get("PADDLE_TRAINER_ID", "0")),
            int(os.environ.get("PADDLE_TRAINERS_NUM", "1")))


def init() -> tuple[int, int]:
    """Join the launcher's process group (once) and return (rank, ranks).

    Ranks other than 0 log only warnings: rank 0 speaks for the run (the launcher keeps every
    rank's full output in ``log/workerlog.<rank>`` anyway).
    """
    rank, n = world()
    if n > 1:
        import paddle.distributed as dist

        if not dist.is_initialized():
            dist.init_parallel_env()
        if rank != 0:
            log.setLevel(logging.WARNING)
    return rank, n


def barrier(n: int) -> None:
    """Wait for every rank (nothing to wait for in a one-process world)."""
    if n > 1:
        import paddle.distributed as dist

        dist.barrier()


def rank_share(batch: int, rank: int, n: int) -> slice:
    """Positions of a global batch of ``batch`` that rank ``rank`` of ``n`` trains on.

    Raises:
        InputError: ``batch`` is not a multiple of ``n`` (the ranks' shares must be equal for the
            averaged gradient to be the gradient of the global batch).
    """
    if batch % n:
        raise InputError("train.batch_size", f"{batch} is the global batch and must be a "
                                             f"multiple of the {n} processes")
    per = batch // n
    return slice(rank * per, (rank + 1) * per)


def gather_interleaved(items: Sequence[T], n: int) -> list[T]:
    """Every rank's ``items`` of a round-robin share (rank r held positions r, r+n, ...) back in
    their original order; the same list on every rank."""
    if n == 1:
        return list(items)
    import paddle.distributed as dist

    parts: list = []
    dist.all_gather_object(parts, list(items))
    out = []
    for i in range(max(len(p) for p in parts)):
        out += [p[i] for p in parts if i < len(p)]
    return out


def sum_across(value: float, n: int) -> float:
    """The sum of ``value`` over the ranks."""
    if n == 1:
        return float(value)
    import paddle
    import paddle.distributed as dist

    t = paddle.to_tensor([float(value)], dtype="float64")
    dist.all_reduce(t)
    return float(t.numpy()[0])


def average_buffers(net, n: int) -> None:
    """Average the state that gradients do not train (BatchNorm's running mean and variance,
    which Paddle keeps as non-trainable parameters) over the ranks, so every rank validates and
    saves the same network."""
    if n == 1:
        return
    import paddle
    import paddle.distributed as dist

    with paddle.no_grad():
        for t in net.state_dict().values():
            if t.stop_gradient and t.dtype in (paddle.float32, paddle.float64, paddle.float16):
                dist.all_reduce(t)
                t.set_value(t / n)


def use_sync_bn(setting, n: int, device: str) -> bool:
    """``train.sync_bn``: ``auto`` = on with several GPU processes; ``true`` needs GPUs.

    Raises:
        InputError: an unknown setting, or ``true`` on CPU (Paddle has no CPU sync_batch_norm).
    """
    if setting == "auto":
        return n > 1 and device.startswith("gpu")
    if not isinstance(setting, bool):
        raise InputError("train.sync_bn", f"expected auto, true or false, got {setting!r}")
    if setting and n > 1 and not device.startswith("gpu"):
        raise InputError("train.sync_bn", "SyncBatchNorm needs GPUs (Paddle has no CPU kernel "
                                          "for it); use train.sync_bn=false or auto on CPU")
    return setting and n > 1
