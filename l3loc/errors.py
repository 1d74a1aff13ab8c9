"""One exception type for bad user input: the tools print its message (no traceback) and exit 2."""
from __future__ import annotations

import os


class InputError(Exception):
    """Bad input named by its path: ``InputError(path, "what is wrong")``."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
