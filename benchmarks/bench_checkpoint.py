"""Checkpoint load time: l3loc's restricted loader vs plain paddle.load, on unet_512-sized weights.

    python benchmarks/bench_checkpoint.py [--repeats 7] [--config configs/unet_512.yml]

The weights are the configured net with random initialisation (timing does not depend on the
values), saved once under work/bench_checkpoint/. The two loaders alternate (and alternate going first),
so both see the same machine load and a warm page cache; the machine's cores are shared, so compare medians.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import l3loc  # noqa: E402,F401  (sets the thread variables before paddle)
from l3loc.config import load_config  # noqa: E402
from l3loc.io.checkpoint import load_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/unet_512.yml")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import paddle

    from l3loc.models import build_net

    path = Path("work/bench_checkpoint") / f"{Path(args.config).stem}.pdparams"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        paddle.seed(0)
        paddle.save(build_net(load_config(args.config)).state_dict(), str(path))
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MB")

    loaders = {"paddle.load": lambda: paddle.load(str(path)),
               "load_checkpoint": lambda: load_checkpoint(path)}
    times = {name: [] for name in loaders}
    for name, fn in loaders.items():
        fn()  # warm-up: page cache, paddle's lazy imports
    for i in range(args.repeats):
        # each loader goes first every other round, so neither always follows the other
        for name, fn in list(loaders.items())[::1 if i % 2 else -1]:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        print(f"{name:16s} median {statistics.median(ts):.3f} s  runs "
              + " ".join(f"{t:.3f}" for t in ts))


if __name__ == "__main__":
    main()
