#!/usr/bin/env bash
# Offline PlatformIO core for tinyfed (shared/ENVIRONMENT.md, "PlatformIO offline").
#
# PlatformIO's registry is unreachable here, so the core package tool-scons and
# the ARM toolchain are installed from local sources into the repo's
# git-ignored core dir (.pio-core, also named by platformio.ini core_dir):
#   - tool-scons: SCons from the venv (PyPI) behind a package.json/.piopm;
#   - toolchain-gccarmnoneeabi: bin/ symlinks to Debian's /usr/bin/arm-none-eabi-*,
#     used by the envs through platform_packages = ...@symlink://.
# Idempotent; callable alone (bash .ci/setup_platformio.sh) or from .ci/setup.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${TINYFED_PYTHON:-$ROOT/.venv/bin/python}"
export PLATFORMIO_CORE_DIR="${PLATFORMIO_CORE_DIR:-$ROOT/.pio-core}"

if ! "$PY" -c "import platformio, SCons" >/dev/null 2>&1; then
  echo "[setup_platformio] platformio/scons missing in $PY (run .ci/setup first)" >&2
  exit 1
fi

SCONS_VERSION=$("$PY" -c "
from platformio.dependencies import get_core_dependencies
print(get_core_dependencies()['tool-scons'].lstrip('~^=<>'))")
PKG="$PLATFORMIO_CORE_DIR/packages/tool-scons"
if [ "$(cat "$PKG/.tinyfed-version" 2>/dev/null)" != "$SCONS_VERSION" ]; then
  echo "[setup_platformio] tool-scons $SCONS_VERSION (local, SCons from the venv)"
  rm -rf "$PKG"
  mkdir -p "$PKG"
  cat > "$PKG/package.json" <<JSON
{"name": "tool-scons", "version": "$SCONS_VERSION", "description": "SCons from PyPI (tinyfed offline setup)", "system": "*"}
JSON
  cat > "$PKG/.piopm" <<JSON
{"type": "tool", "name": "tool-scons", "version": "$SCONS_VERSION", "spec": {"owner": "platformio", "id": null, "name": "tool-scons", "requirements": "~$SCONS_VERSION", "uri": null}}
JSON
  cat > "$PKG/scons.py" <<'PYEOF'
# tinyfed offline tool-scons: run the SCons installed in this Python.
import sys

import SCons.Script.Main

if __name__ == "__main__":
    sys.exit(SCons.Script.Main.main())
PYEOF
  echo "$SCONS_VERSION" > "$PKG/.tinyfed-version"
fi

TC="$PLATFORMIO_CORE_DIR/local/toolchain-gccarmnoneeabi"
if [ ! -x "$TC/bin/arm-none-eabi-gcc" ]; then
  if ! command -v arm-none-eabi-gcc >/dev/null 2>&1; then
    echo "[setup_platformio] arm-none-eabi-gcc missing: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" >&2
    exit 1
  fi
  echo "[setup_platformio] local toolchain package -> /usr/bin/arm-none-eabi-*"
  rm -rf "$TC"
  mkdir -p "$TC/bin"
  for tool in /usr/bin/arm-none-eabi-*; do
    ln -s "$tool" "$TC/bin/$(basename "$tool")"
  done
  cat > "$TC/package.json" <<JSON
{"name": "toolchain-gccarmnoneeabi", "version": "1.120201.0", "description": "Debian arm-none-eabi-gcc (symlinks; tinyfed offline setup)", "system": "*"}
JSON
fi
echo "[setup_platformio] ok: PLATFORMIO_CORE_DIR=$PLATFORMIO_CORE_DIR"
