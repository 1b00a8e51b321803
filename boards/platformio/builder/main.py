"""SCons build script of the tinyfed local PlatformIO platform.

What to compile comes from toolchain/image/firmware.py (``plan_build``), the same
function ``build_image`` uses, so ``pio run`` and the Python build produce the
same image: firmware/src (minus apps) + the app + boards/common + the board
folder + the generated model directory, the board's CPU flags and linker
script (real chip sizes).

Project options (platformio.ini) / environment variables:
  custom_tinyfed_app        app name under firmware/src/app (env TINYFED_APP)
  custom_tinyfed_model_dir  generated model C directory (env TINYFED_MODEL_DIR;
                            default: build/model_c)
Under ``pio test`` the app is the test's own sources (test_dir/<test>/*.c) and
firmware/src is left out (board-level on-target tests).
"""

import os
import sys

from SCons.Script import COMMAND_LINE_TARGETS, AlwaysBuild, Builder, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
project_dir = env.subst("$PROJECT_DIR")
build_dir = env.subst("$BUILD_DIR")
sys.path.insert(0, os.path.join(project_dir, "boards", "platformio"))
from tinyfed_package import firmware_module  # noqa: E402

fw = firmware_module(project_dir)


def _option(name, env_var, default):
    value = os.environ.get(env_var) or env.GetProjectOption(name, "")
    return value.strip() if value and value.strip() else default


tinyfed_board = board.get("build.tinyfed_board")
app = _option("custom_tinyfed_app", "TINYFED_APP", "main")
model_dir = _option("custom_tinyfed_model_dir", "TINYFED_MODEL_DIR",
                    os.path.join(project_dir, "build", "model_c"))
if not os.path.isabs(model_dir):
    model_dir = os.path.join(project_dir, model_dir)

testing = "__test" in COMMAND_LINE_TARGETS and env.get("PIOTEST_RUNNING_NAME")
extra_sources = []
runtime = True
if testing:
    test_dir = os.path.join(env.subst("$PROJECT_TEST_DIR"), env["PIOTEST_RUNNING_NAME"])
    tests = sorted(os.path.join(test_dir, f) for f in os.listdir(test_dir) if f.endswith(".c"))
    app, extra_sources, runtime, model_dir = tests[0], tests[1:], False, None

try:
    plan = fw.plan_build(tinyfed_board, model_dir, os.path.join(build_dir, "tinyfed"), app=app,
                         extra_sources=extra_sources, runtime=runtime)
except fw.BuildError as exc:
    sys.stderr.write(f"Error: {exc}\n")
    env.Exit(1)

prefix = "arm-none-eabi-"
env.Replace(
    AR=prefix + "gcc-ar",
    AS=prefix + "gcc",
    CC=prefix + "gcc",
    CXX=prefix + "g++",
    LINK=prefix + "gcc",
    OBJCOPY=prefix + "objcopy",
    RANLIB=prefix + "gcc-ranlib",
    SIZETOOL=prefix + "size",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
    SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.rodata|\.ARM\.exidx|\.init_array|\.fini_array|\.data)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.stack|\.data|\.bss)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)
env.Replace(
    CCFLAGS=list(plan.cflags),
    # SCons passes defines through a shell: keep string literals quoted.
    CPPDEFINES=[(k, v.replace('"', '\\"')) for k, v in sorted(plan.defines.items())],
    CPPPATH=[str(d) for d in plan.include_dirs],
    LINKFLAGS=[*plan.board.cpu_flags, *(f"-L{d}" for d in plan.linker_dirs),
               f"-T{plan.linker_script}", *plan.ldflags],
    LIBS=["m"],
)
env.Append(BUILDERS={
    "ElfToBin": Builder(action=env.VerboseAction("$OBJCOPY -O binary $SOURCES $TARGET",
                                                 "Building $TARGET"), suffix=".bin"),
})

objects = []
for src in plan.sources:
    rel = os.path.relpath(str(src), project_dir)
    if rel.startswith(".."):
        rel = os.path.join("_ext", str(src).lstrip(os.sep))
    objects.append(env.Object(os.path.join(build_dir, "obj", rel + ".o"), str(src)))

program = env.Program(os.path.join(build_dir, env.subst("$PROGNAME")), objects)
binary = env.ElfToBin(os.path.join(build_dir, "firmware"), program)
env.Alias("buildprog", [program, binary])
env.Alias("__test", [program, binary])
env.Default([program, binary])

env.AddPlatformTarget("upload", program, env.VerboseAction(
    "echo 'tinyfed: nothing to upload (QEMU boots the ELF: python -m tinyfed_host.emulator "
    "$SOURCE; real boards: flash build/<env>/firmware.bin with your probe)'",
    "Upload (no-op)"), "Upload")


def _memory_statement(target, source, env):
    print(fw.measure(tinyfed_board, fw.Path(str(source[0]))).statement())
    return 0


AlwaysBuild(env.Alias("checkprogsize", program,
                      env.VerboseAction(_memory_statement, "Checking size $SOURCE")))
Default([program, binary])
