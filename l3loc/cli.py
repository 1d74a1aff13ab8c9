"""What every tool in tools/ shares: error handling, progress bars, tagged logs, device choice."""
from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings

from l3loc.errors import InputError

log = logging.getLogger("l3loc")


def progress_enabled() -> bool:
    """Progress bars only for a person at a terminal: not under CI, not into a log file."""
    return not os.environ.get("CI") and sys.stderr.isatty()


def setup_logging(debug: bool = False) -> None:
    """Console log lines tagged like ``[TRAIN] ...``: the tag is part of each message."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True)


def resolve_device(name: str = "auto") -> str:
    """``'cpu'``, ``'gpu'`` or ``'auto'`` (GPU when Paddle has CUDA and one is present)."""
    import paddle

    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if name == "auto":
        name = "gpu" if has_gpu else "cpu"
    if name == "gpu" and not has_gpu:
        raise InputError("--device", "gpu requested but Paddle has no CUDA or no GPU is present")
    if name not in ("cpu", "gpu"):
        raise InputError("--device", f"unknown device {name!r}: expected cpu, gpu or auto")
    paddle.set_device(name)
    return name


def run_tool(main) -> None:
    """Run ``main()``; bad input ends with one line naming the file and exit status 2.

    A traceback is shown only with ``--debug`` on the command line.
    """
    debug = "--debug" in sys.argv
    setup_logging(debug)
    # noise from paddle's own imports and BatchNorm, not actionable for a user
    warnings.filterwarnings("ignore", message="No ccache found")
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")
    try:
        code = main()
    except (InputError, FileExistsError) as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
