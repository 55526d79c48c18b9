"""Make the initrd test helpers importable (tests/initrd has no __init__.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
