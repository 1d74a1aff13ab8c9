"""Trained weights and optimizer state (``.pdparams`` / ``.pdopt``) read without executing code.

``paddle.save`` writes a pickle, and ``paddle.load`` unpickles it without restriction: a crafted
``best.pdparams`` would run its code the moment a model folder is opened. Model folders are what
people share, so every checkpoint l3loc reads (prediction, evaluation, export, ``--resume``) goes
through :func:`load_checkpoint`, which unpickles with the npz reader's
:class:`~l3loc.io.npz.RestrictedUnpickler` and an allow-list of exactly the globals Paddle 3.3's
own files name (found with ``pickletools.dis`` on the state dicts of a model, of AdamW/Adam with
and without an LR scheduler, and on the engine's ``last.pdopt``):

- a state dict (``layer.state_dict()``, ``optimizer.state_dict()``) is a dict of numpy arrays
  (``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``) plus the name
  table ``"StructuredToParameterName@@"`` (str -> str) and, with a scheduler, ``"LR_Scheduler"``
  (str -> int/float);
- a tensor nested deeper (the engine's ``{"optimizer": state, "epoch", "best"}``) is pickled as
  ``tuple((name, array))``, which adds ``builtins.tuple``.

The numpy 1.x spelling (``numpy.core.multiarray``) is allowed too: same Paddle, older numpy.
Anything else (``os.system``, ``builtins.eval``, even numpy scalars, which Paddle never writes
here) is refused with one line naming the file and the global.

The exported inference models need nothing of this: ``model.json`` is JSON and
``model.pdiparams`` is Paddle's binary tensor stream (``save_combine``), both parsed by Paddle's
C++ loader (``paddle.inference.Config``) without Python pickle.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from l3loc.errors import InputError
from l3loc.io.npz import RestrictedUnpickler

CHECKPOINT_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("builtins", "tuple"),
})

# paddle.save's table of structured name -> parameter name, written next to a state dict's arrays
_NAME_TABLE = "StructuredToParameterName@@"


def load_checkpoint(path):
    """What ``paddle.load(path)`` returns for a ``.pdparams`` / ``.pdopt`` that ``paddle.save``
    wrote (arrays as named Paddle tensors, ready for ``set_state_dict``), without executing code.

    Raises:
        InputError: missing or unreadable file, or a pickle naming anything but numpy arrays,
            dtypes and tuples.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "is a folder, expected a checkpoint file" if path.is_dir()
                         else "file not found")
    try:
        with open(path, "rb") as fh:
            obj = RestrictedUnpickler(
                fh, str(path), CHECKPOINT_GLOBALS,
                holds="a Paddle checkpoint holds only numpy arrays, dict, tuple, str and numbers",
            ).load()
        return _as_tensors(obj)
    except InputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, OverflowError, MemoryError, RecursionError) as exc:
        raise InputError(path, f"not a readable Paddle checkpoint (corrupt or truncated?): "
                               f"{type(exc).__name__}: {exc}") from None


def _tensor(array: np.ndarray, name: str | None):
    import paddle

    t = paddle.to_tensor(array)
    if name:
        t.name = name
    return t


def _convert(obj, is_leaf, convert):
    # dicts and lists are converted in place so that each array is freed as soon as its tensor
    # exists: building new containers kept every array alive to the end and made loading
    # ~25 % slower than paddle.load (a second 118 MB of fresh pages for unet_512)
    if is_leaf(obj):
        return convert(obj)
    if isinstance(obj, (dict, list)):
        for k in (obj.keys() if isinstance(obj, dict) else range(len(obj))):
            obj[k] = _convert(obj[k], is_leaf, convert)
        return obj
    if isinstance(obj, tuple):
        return tuple(_convert(v, is_leaf, convert) for v in obj)
    return obj


def _is_named_array(obj) -> bool:
    return (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str)
            and isinstance(obj[1], np.ndarray))


def _as_tensors(obj):
    """The arrays of an unpickled checkpoint as tensors, the way ``paddle.load`` (3.3) does it."""
    if isinstance(obj, dict) and _NAME_TABLE in obj:
        # a state dict saved as such: the arrays the name table lists become tensors of that name
        names = obj.pop(_NAME_TABLE)
        for k in obj:
            if k in names and isinstance(obj[k], np.ndarray):
                obj[k] = _tensor(obj[k], names[k])
        return obj
    if _contains(obj, _is_named_array):
        # tensors nested in other containers were pickled as (name, array)
        return _convert(obj, _is_named_array, lambda t: _tensor(t[1], t[0]))
    return _convert(obj, lambda o: isinstance(o, np.ndarray), lambda a: _tensor(a, None))


def _contains(obj, is_leaf) -> bool:
    if is_leaf(obj):
        return True
    if isinstance(obj, dict):
        return any(_contains(v, is_leaf) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_contains(v, is_leaf) for v in obj)
    return False
