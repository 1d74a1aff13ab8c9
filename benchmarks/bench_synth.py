"""Time the phantom generator: the tiny preset (8 cases) and N default cases on 2 workers.

    python benchmarks/bench_synth.py --n 100

Prints wall time, the CPU time of this process and its workers, and the extrapolation to 1000
cases on two otherwise idle cores (CPU time / 2). On a shared machine the wall time is inflated
by other jobs; the CPU time is not.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l3loc.synth.writers import generate_dataset  # noqa: E402


def _timed(**kwargs) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), os.times()
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp) / "out", **kwargs)
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) \
        + (c1.children_system - c0.children_system)
    return time.perf_counter() - t0, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="default-preset cases to time")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    wall, cpu = _timed(n=8, preset="tiny", workers=args.workers)
    print(f"tiny preset, 8 cases: wall {wall:.1f} s, cpu {cpu:.1f} s")
    wall, cpu = _timed(n=args.n, preset="default", workers=args.workers)
    print(f"default preset, {args.n} cases, {args.workers} workers: wall {wall:.1f} s, cpu {cpu:.1f} s; "
          f"1000 cases ~ {1000 / args.n * wall / 60:.1f} min at this load, "
          f"~ {1000 / args.n * cpu / 2 / 60:.1f} min on 2 idle cores")
    print(f"load average now: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
