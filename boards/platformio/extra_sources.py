"""PlatformIO extra script for the real-board envs on the standard platforms
(ststm32 / nordicnrf52 in platformio.ini).

Adds tinyfed's sources, flags and linker script from toolchain/image/firmware.py
(the one description of an image build) to a framework-less build.
NOT RUN HERE: those platforms need PlatformIO's registry (the internet); the
offline equivalents are the *-local envs on boards/platformio.
"""

import os
import sys

Import("env")  # noqa: F821  (SCons extra-script global)

project_dir = env.subst("$PROJECT_DIR")  # noqa: F821
sys.path.insert(0, os.path.join(project_dir, "boards", "platformio"))
from tinyfed_package import firmware_module  # noqa: E402

fw = firmware_module(project_dir)

BOARD_OF = {"disco_f746ng": "stm32f746g-disco", "nrf52840_dk": "nrf52840", "genericSTM32F405RG": "stm32f405",
            "nano33ble": "nano33ble"}
board = BOARD_OF[env.subst("$BOARD")]  # noqa: F821
model_dir = os.environ.get("TINYFED_MODEL_DIR") or os.path.join(project_dir, "build", "model_c")
app = os.environ.get("TINYFED_APP") or "main"
plan = fw.plan_build(board, model_dir, os.path.join(env.subst("$BUILD_DIR"), "tinyfed"),  # noqa: F821
                     app=app)

env.Append(  # noqa: F821
    CCFLAGS=[f for f in plan.cflags if f not in env.get("CCFLAGS", [])],  # noqa: F821
    CPPDEFINES=[(k, v.replace('"', '\\"')) for k, v in sorted(plan.defines.items())],
    CPPPATH=[str(d) for d in plan.include_dirs],
    LINKFLAGS=[*plan.board.cpu_flags, *(f"-L{d}" for d in plan.linker_dirs), *plan.ldflags],
    LIBS=["m"],
)
env.Replace(LDSCRIPT_PATH=str(plan.linker_script))  # noqa: F821
for i, folder in enumerate(sorted({s.parent for s in plan.sources})):
    names = sorted(s.name for s in plan.sources if s.parent == folder)
    env.BuildSources(  # noqa: F821
        os.path.join("$BUILD_DIR", "tinyfed", str(i)), str(folder),
        src_filter=["-<*>"] + [f"+<{n}>" for n in names])
