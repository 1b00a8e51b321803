"""Where things are: the source tree (found from this file) and the build folder."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("TINYFED_ROOT", Path(__file__).resolve().parent.parent))
FIRMWARE = ROOT / "firmware"
FIRMWARE_INCLUDE = FIRMWARE / "include"
BOARDS = ROOT / "boards"
BUILD = Path(os.environ.get("TINYFED_BUILD_DIR", ROOT / "build"))
