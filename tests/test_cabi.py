"""The C ABI as Python reads it equals what the C compiler sees (op ids, status codes, ABI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tinyfed_toolchain.facts.c_headers import model_abi, op_ids, status_codes
from tinyfed_toolchain.image.native_cc import compile_native
from tinyfed_toolchain.compile.ops import supported_ops
from tinyfed_toolchain.facts.paths import FIRMWARE

PROBE = r"""
#include <stdio.h>
#include "tfd/model.h"
#include "tfd/status.h"
int main(void) {
    printf("abi %d\n", TFD_MODEL_ABI);
#define P_(name, id, fn) printf("op %s %d\n", #name, (int)TFD_OP_##name);
    TFD_OP_LIST(P_)
#undef P_
#define S_(name, code, text) printf("st %d %s|%s\n", (int)name, #name, tfd_status_str(name));
    TFD_STATUS_LIST(S_)
#undef S_
    return 0;
}
"""


def test_python_reads_the_same_abi_as_c(tmp_path: Path) -> None:
    src = tmp_path / "probe.c"
    src.write_text(PROBE)
    exe = compile_native([src, FIRMWARE / "src" / "runtime" / "status.c"], [], "cabi-probe", cache_dir=tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"abi {model_abi()}"
    c_ops = {ln.split()[1]: int(ln.split()[2]) for ln in out if ln.startswith("op ")}
    assert c_ops == op_ids()
    c_status = {int(ln.split()[1]): tuple(ln.split(" ", 2)[2].split("|", 1)) for ln in out if ln.startswith("st ")}
    assert c_status == status_codes()


def test_every_c_kernel_has_a_lowering() -> None:
    assert set(op_ids()) <= set(supported_ops())
