"""Preprocess a dataset once into the cache that training reads (MIP -> 1 mm -> HU window -> canvas).

    python tools/preprocess.py --config configs/unet_512.yml
    python tools/preprocess.py --config configs/unet_512.yml --view sagittal --opts data.source=my.npz

The source (``data.source``: an l3_dataset.npz or an annotation CSV of scans), the cache root
(``data.cache_dir``) and the parameters (``preprocess:``) come from the config. An unchanged
cache is reused; a changed config or source gets a new folder. Prints one folder per view.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without install

from l3loc.cli import run_tool  # noqa: E402
from l3loc.preprocess import VIEWS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--view", choices=VIEWS + ("both",), default="both")
    parser.add_argument("--opts", nargs="*", default=[], help="overrides: key.sub=value ...")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args()

    from l3loc.cache import open_cache
    from l3loc.config import load_config

    cfg = load_config(args.config, args.opts)
    for view in VIEWS if args.view == "both" else (args.view,):
        data = open_cache(cfg, view, workers=args.workers)
        print(f"{view}: {len(data)} cases in {data.cache_dir}")
    return 0


if __name__ == "__main__":
    run_tool(main)
