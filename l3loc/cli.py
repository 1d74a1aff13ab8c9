"""The ``l3loc`` command and what every command shares: error handling, progress bars, tagged
logs, device choice.

One command with subcommands (``l3loc predict``, ``l3loc train``, ...) rather than one script per
tool: users of this field know one command that answers (``TotalSegmentator -i ct.nii.gz``), so
the everyday call is ``l3loc predict ct.nii.gz``; the other tools sit under the same name, as in
git or pip, with one ``--version`` for provenance, and ``l3loc -h`` lists them all. ``tools/<tool>.py`` in a clone
runs the same parser and function (:func:`tool_main`).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
import traceback
import warnings

import l3loc
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
    """``'cpu'``, ``'gpu'``, ``'gpu:K'`` (the K-th GPU, 0-based) or ``'auto'`` (GPU when Paddle
    has CUDA and one is present); returns the device set."""
    import paddle

    n_gpus = paddle.device.cuda.device_count() if paddle.device.is_compiled_with_cuda() else 0
    if name == "auto":
        name = "gpu" if n_gpus else "cpu"
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "gpu") or (index and (kind == "cpu" or not index.isdigit())):
        raise InputError("--device", f"unknown device {name!r}: expected cpu, gpu, gpu:K or auto")
    if kind == "gpu" and not n_gpus:
        raise InputError("--device", "gpu requested but Paddle has no CUDA or no GPU is present")
    if index and int(index) >= n_gpus:
        raise InputError("--device", f"{name}: only {n_gpus} GPU(s) present (gpu:0..gpu:{n_gpus - 1})")
    paddle.set_device(name)
    return name


#: ``--device`` of every command that runs a network (:func:`resolve_device` checks the value).
DEVICE_HELP = "auto (GPU when present; the default), cpu, gpu, or gpu:K for the K-th GPU (0-based)"


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, the same in every command that runs a network (train, eval, predict)."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that combine runs into one (``average``, ``ensemble``)."""
    parser.add_argument("runs", nargs="+", help="run folders (two or more), e.g. work/ft26")
    parser.add_argument("--out", required=True, help="output run folder")
    parser.add_argument("--view", default="frontal", choices=("frontal", "sagittal"))
    parser.add_argument("--overwrite", action="store_true", help="replace existing folds")


def add_fold_argument(parser: argparse.ArgumentParser, default: str = "every trained fold") -> None:
    """``--fold``, the same in every command: ``K``, ``K,L,...`` or ``all``; repeatable
    (``--fold 1 --fold 3`` = ``--fold 1,3``). :func:`parse_folds` reads it."""
    parser.add_argument("--fold", action="append", metavar="K|K,L|all",
                        help=f"1-based fold(s): K, a comma list, or all; repeatable (default: {default})")


def parse_folds(values: list[str] | None) -> list[int] | None:
    """``--fold`` values -> sorted 1-based fold numbers; None = every fold (``all`` or none given).

    Raises:
        InputError: a value that is not a positive integer, or ``all`` mixed with numbers.
    """
    if not values:
        return None
    parts = [p.strip() for v in values for p in str(v).split(",")]
    if "all" in parts:
        if len(parts) > 1:
            raise InputError("--fold", f"'all' cannot be combined with fold numbers, got {values}")
        return None
    if not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise InputError("--fold", f"expected 1-based fold numbers (K or K,L,...) or all, got "
                                   f"{','.join(map(str, values))!r}")
    return sorted({int(p) for p in parts})


#: The subcommands of ``l3loc``, one module each in ``l3loc.commands``.
COMMANDS = ("predict", "train", "eval", "export", "synth", "merge", "average", "ensemble",
            "compose", "calibrate", "inspect", "preprocess")
#: ``tools/<script>.py`` -> the command it runs (the scripts keep their historical names).
TOOLS = {"predict": "predict", "train": "train", "eval": "eval", "export": "export",
         "make_synthetic": "synth", "merge_datasets": "merge", "average_weights": "average",
         "ensemble_runs": "ensemble", "compose_views": "compose", "calibrate": "calibrate",
         "inspect_data": "inspect", "preprocess": "preprocess"}


def _command_module(name: str):
    return importlib.import_module(f"l3loc.commands.{name}")


def _add_command_arguments(parser: argparse.ArgumentParser, module) -> None:
    module.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _paddle_version() -> str:
    """Paddle's version without importing it (2-3 s): from the installed distribution."""
    from importlib import metadata

    for dist in ("paddlepaddle", "paddlepaddle-gpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return "not installed"


def version_text() -> str:
    """``l3loc --version``: the package, the shipped model's id and Paddle, for provenance."""
    from l3loc.shipping import shipped_model_id

    try:
        model = shipped_model_id() or "none"
    except InputError as exc:
        model = f"unusable ({exc})"
    return f"l3loc {l3loc.__version__}\nshipped model: {model}\npaddle: {_paddle_version()}"


class _VersionAction(argparse.Action):
    """Like argparse's ``version`` action, but the text is made only when asked for."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the package version, the "
                         "shipped model's id and Paddle's version, then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``l3loc`` command: one entry point with a subcommand per tool (TotalSegmentator-like)."""
    parser = argparse.ArgumentParser(
        prog="l3loc", description="Find the L3 vertebra slice in CT scans. `l3loc <command> -h` "
        "explains each command; `l3loc predict scan.nii.gz` runs the shipped model.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        module = _command_module(name)
        doc = module.__doc__ or ""
        _add_command_arguments(sub.add_parser(
            name, help=doc.strip().splitlines()[0], description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter), module)
    return parser


def _run(parse, argv: list[str]) -> int:
    """Parse and run one command; bad input ends with one line naming the file and status 2.

    A traceback is shown only with ``--debug`` on the command line.
    """
    debug = "--debug" in argv
    setup_logging(debug)
    # noise from paddle's own imports and BatchNorm, not actionable for a user
    warnings.filterwarnings("ignore", message="No ccache found")
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")
    try:
        module, args = parse()
        return module.run(args) or 0
    except KeyboardInterrupt:
        print("interrupted (files are written whole or not at all; --resume continues where a "
              "cohort or training stopped)", file=sys.stderr)
        return 130
    except BaseException as exc:
        return _reported(exc, debug)


def _reported(exc: BaseException, debug: bool) -> int:
    """Status 2 after one line for an error that is the user's to fix; a bug is raised again."""
    message = user_error(exc)
    if message is None:
        raise exc  # a bug: the traceback is what a report needs
    if debug:
        traceback.print_exception(exc)
    print(f"error: {message}", file=sys.stderr)
    return 2


def script_main(main) -> None:
    """Run a script's ``main()`` (benchmarks/) as the tools run a command: bad input ends with
    one line naming the file and status 2 (a traceback only with ``--debug``)."""
    try:
        status = main()
    except BaseException as exc:
        status = _reported(exc, "--debug" in sys.argv)
    sys.exit(status)


def user_error(exc: BaseException) -> str | None:
    """The one line a user sees for an error that is theirs to fix (a bad file, key or value, a
    missing or unwritable path, not enough memory), naming the file or key; None for a bug.

    ``InputError`` names its file or key; an ``OSError`` from the system names its file
    (``FileNotFoundError``, ``PermissionError``, a full disk, ...); ``FileExistsError`` is raised
    by l3loc with the path in its message.
    """
    if isinstance(exc, InputError):
        text = str(exc)
    elif isinstance(exc, FileExistsError) and not exc.filename:
        text = str(exc)
    elif isinstance(exc, OSError) and (exc.filename or exc.strerror):
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror or exc}"
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    else:
        return None
    return " ".join(text.split())  # one line, even when a message quotes a multi-line reason


def main(argv: list[str] | None = None) -> int:
    """``l3loc <command> ...`` (the console entry point); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def parse():
        args = build_parser().parse_args(argv)
        args.command_line = shlex.join(["l3loc", *argv])
        return _command_module(args.command), args

    return _run(parse, argv)


def tool_main(tool: str) -> None:
    """``python tools/<tool>.py ...``: the same parser and function as ``l3loc <command>``."""
    argv = sys.argv[1:]
    module = _command_module(TOOLS[tool])

    def parse():
        parser = argparse.ArgumentParser(prog=f"tools/{tool}.py", description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_command_arguments(parser, module)
        args = parser.parse_args(argv)
        args.command_line = shlex.join(["python", f"tools/{tool}.py", *argv])
        return module, args

    sys.exit(_run(parse, argv))
