"""``l3loc compose`` run from a clone without installing: the same options and code
(l3loc/commands/compose.py). ``python tools/compose_views.py --help`` lists them.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without install

from l3loc.cli import tool_main  # noqa: E402

if __name__ == "__main__":
    tool_main("compose_views")
