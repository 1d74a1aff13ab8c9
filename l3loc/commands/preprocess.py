"""Preprocess a dataset once into the cache that training reads (MIP -> 1 mm -> HU window -> canvas).

    l3loc preprocess --config unet_512
    l3loc preprocess --config my_experiment.yml --view sagittal --opts data.source=my.npz

The source (``data.source``: an l3_dataset.npz or an annotation CSV of scans), the cache root
(``data.cache_dir``) and the parameters (``preprocess:``) come from the config. An unchanged
cache is reused; a changed config or source gets a new folder. Prints one folder per view.
"""
from l3loc.config import VIEWS
from l3loc.mip import VIEWS as NET_VIEWS


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="packaged config name or YAML path")
    parser.add_argument("--view", choices=VIEWS, default="both",
                        help="frontal, sagittal, or both (the default: one cache each)")
    parser.add_argument("--opts", nargs="*", default=[], help="overrides: key.sub=value ...")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")


def run(args) -> int:
    from l3loc.cache import open_cache
    from l3loc.config import load_config

    cfg = load_config(args.config, args.opts)
    for view in NET_VIEWS if args.view == "both" else (args.view,):
        data = open_cache(cfg, view, workers=args.workers)
        print(f"{view}: {len(data)} cases in {data.cache_dir}")
    return 0
