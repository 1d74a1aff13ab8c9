"""``python -m l3loc ...`` = the ``l3loc`` command (when the console script is not on PATH)."""
import sys

from l3loc.cli import main

sys.exit(main())
