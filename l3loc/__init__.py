"""l3loc: find the third lumbar vertebra (L3) slice in CT scans.

Pipeline (one module per stage):
    io/ (scans, l3_dataset.npz) -> synth/ (phantoms) -> preprocess (MIP, 1 mm, HU window,
    canvas) -> labels -> models -> engine (k-fold training) -> decode -> metrics/evaluate -> predict
"""
import os as _os

# Paddle's bundled MKL takes a slow code path on these AMD CPUs unless MKL_DEBUG_CPU_TYPE=5, and
# more OpenMP threads than cores thrash: measured 3-5x faster training with both set. They only
# work if set before paddle is first imported, so the package sets them on import; a user's own
# values win.
_os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
_os.environ.setdefault("OMP_NUM_THREADS", str(min(_os.cpu_count() or 1, 2)))

__version__ = "0.1.0"

#: The Python API (``l3loc/api.py``), imported on first use so that ``import l3loc`` stays light
#: and sets the environment above before anything imports paddle.
_API = ("find_l3", "predict_cohort", "load_model")
__all__ = list(_API)


def __getattr__(name):
    if name in _API:
        from l3loc import api

        return getattr(api, name)
    raise AttributeError(f"module 'l3loc' has no attribute {name!r}")
