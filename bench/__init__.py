"""Benchmarks (not tests): see docs/benchmarks.md for the commands and the figures.

The worlds the benchmarks share with the tests live in ``tests/support/`` (the package
``support``); this puts ``tests/`` on the import path, once, for ``python -m bench.<name>``.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
