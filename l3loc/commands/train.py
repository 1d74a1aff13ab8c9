"""Train an L3 localiser with k-fold cross-validation.

    l3loc train --fold 5 --view sagittal --config cpu_fast
    l3loc train --fold all --view both --config demo --opts train.epochs=3
    l3loc train --fold all --view both --parallel 4 --config unet_512   # 4 trainings at once
    python -m paddle.distributed.launch --nproc_per_node 4 tools/train.py --fold 1 --config unet_512
    python tools/train.py --fold 5 --view sagittal          # the same, from a clone

``--config`` is a packaged config's name (cpu_fast, demo, unet_512) or a YAML file's path.
``--fold K`` is 1-based: fold 5 of 5 validates on the fifth part and trains on the other four
(``--fold 1,3``, ``--fold all``: several in turn). ``--view both`` trains both views' nets, one
after the other (prediction and evaluation then fuse them: their ``--view fused``).
Outputs: <work-dir>/<experiment>/<view>/fold_<K>/ (see l3loc/engine.py); the experiment name is
the config's name unless ``--experiment`` is given.
"""
from l3loc.cli import add_device_argument, add_fold_argument
from l3loc.config import VIEWS


def add_arguments(parser) -> None:
    parser.add_argument("--config", default="cpu_fast",
                        help="packaged config name or YAML path (default: cpu_fast)")
    add_fold_argument(parser, default="1")
    parser.add_argument("--view", choices=VIEWS, help="frontal, sagittal, or both (one net each); "
                                                      "default: train.view of the config")
    parser.add_argument("--experiment", help="run folder name under work/ (default: config name)")
    parser.add_argument("--opts", nargs="*", default=[], help="overrides: key.sub=value ...")
    parser.add_argument("--resume", action="store_true", help="continue from last.pdparams")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="with --resume: continue even if the config differs from the fold's "
                             "config.yaml (default: refuse; train.epochs may always change)")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing fold and restart")
    parser.add_argument("--work-dir", help="folder of the experiments (default: work_dir of the "
                                           "config, work)")
    add_device_argument(parser)
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="train N of the asked folds/views side by side, one process each "
                             "(one GPU each when there are GPUs)")


def run(args) -> int:
    from l3loc.cli import parse_folds
    from l3loc.engine import run_training

    opts = args.opts + ([f"work_dir={args.work_dir}"] if args.work_dir else [])
    run_training(args.config, fold=parse_folds(args.fold or ["1"]) or "all", view=args.view, experiment=args.experiment,
                 opts=opts, resume=args.resume, overwrite=args.overwrite, device=args.device,
                 parallel=args.parallel, allow_config_change=args.allow_config_change,
                 command=args.command_line)
    return 0
