"""Where things are: the source tree (found from this file) and the build folder.

The one place the repository root is computed.  ``TINYFED_ROOT`` overrides it
(a checkout used from elsewhere); ``TINYFED_BUILD_DIR`` moves the build folder.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("TINYFED_ROOT", Path(__file__).resolve().parents[2]))
FIRMWARE = ROOT / "firmware"
FIRMWARE_INCLUDE = FIRMWARE / "include"
TFD_INCLUDE = FIRMWARE_INCLUDE / "tfd"
NATIVE = FIRMWARE / "native"  # C harnesses compiled for the build machine
BOARDS = ROOT / "boards"
BUILD = Path(os.environ.get("TINYFED_BUILD_DIR", ROOT / "build"))

__all__ = ["ROOT", "FIRMWARE", "FIRMWARE_INCLUDE", "TFD_INCLUDE", "NATIVE", "BOARDS", "BUILD"]
