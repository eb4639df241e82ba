"""Fault run: the whole pipeline on a broker of its own while processes die and Kafka goes away.

    python bench/faults.py [--quick] [--seconds N] [--seed S] [--events N] [--keep]

What it does and what its RESULT line means: bench/fault_run.py (the module tests import).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fault_run import main

if __name__ == "__main__":
    sys.exit(main())
