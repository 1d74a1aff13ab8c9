"""Train an L3 localiser with k-fold cross-validation.

    python tools/train.py --fold 5 --view sagittal --config configs/cpu_fast.yml
    python tools/train.py --fold all --view both --config configs/demo.yml --opts train.epochs=3

``--fold K`` is 1-based: fold 5 of 5 validates on the fifth part and trains on the other four.
Outputs: work/<experiment>/<view>/fold_<K>/ (see l3loc/engine.py); the experiment name is the
config file's name unless ``--experiment`` is given.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without install

from l3loc.cli import run_tool  # noqa: E402
from l3loc.config import VIEWS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/cpu_fast.yml", help="experiment YAML")
    parser.add_argument("--fold", default="1", help="1..k, or 'all' for every fold in turn")
    parser.add_argument("--view", choices=VIEWS, help="default: train.view of the config")
    parser.add_argument("--experiment", help="run folder name under work/ (default: config name)")
    parser.add_argument("--opts", nargs="*", default=[], help="overrides: key.sub=value ...")
    parser.add_argument("--resume", action="store_true", help="continue from last.pdparams")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing fold and restart")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from l3loc.engine import run_training

    run_training(args.config, fold=args.fold, view=args.view, experiment=args.experiment,
                 opts=args.opts, resume=args.resume, overwrite=args.overwrite, device=args.device,
                 command=" ".join(sys.argv))
    return 0


if __name__ == "__main__":
    run_tool(main)
