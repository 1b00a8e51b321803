"""bench/secagg_stages.py on QEMU (mps2-an386): the device SecAgg+ client
measured per stage, with small parameters.

The image runs k + 1 real C clients through a round without and a round
with a dropout and plays the server's unmasking on the device; these tests
check that it reports every stage with the body sizes of the protocol, that
its stack figures are real (SHARE_KEYS keeps > 1.5 KB of arrays on the
stack), and that its self-check is not vacuous: an image whose server side
forgets to remove the self masks the right way round must fail."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
K, T, N = 3, 3, 64  # t a strict majority of the k + 1 holders (device policy)


def _bench() -> ModuleType:
    path = ROOT / "bench" / "secagg_stages.py"
    spec = importlib.util.spec_from_file_location("bench_secagg_stages", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _bench()


def test_every_stage_measured_and_self_check_passes(bench: ModuleType, tmp_path: Path) -> None:
    cfg = bench.Config("mps2-an386", neighbours=K, threshold=T, params=N, chunk=16)
    kv, info = bench.run(cfg, shift=bench.DEFAULT_SHIFT, timeout=120.0, build_dir=tmp_path)
    assert kv["secagg_stages"] == "ok" and "error" not in kv
    assert (int(kv["k"]), int(kv["t"]), int(kv["n_params"])) == (K, T, N)
    want_bodies = {  # (request, reply) body bytes, from the wire table (messages.py)
        "advertise": (12 + 4 * K, 72 + 64),  # + the device's signature
        "share_keys": (6 + 198 * K, 10 + 108 * K),  # keys + neighbourhood + signature per neighbour
        "masked_prepare": (6 + 112 * K, 0),
        "masked_stream": (0, 4 + 4 * (N + 1)),
        "survivors": (6 + 1, 8 + 64),  # a 1-byte bitmap -> a signature
        # the other survivors' signatures -> own b + one share per neighbour held
        "unmask": (6 + 68 * (K - 1), 10 + 37 * (K + 1)),
    }
    max_nb = int(kv["max_neighbours"])
    stack_size = int(kv["stack_size"])
    for rnd in ("drop", "nodrop"):
        rows = {s.key: s for s in bench.stages(kv, rnd)}
        assert set(rows) == set(want_bodies)
        for key, s in rows.items():
            assert s.insns > 0, (rnd, key)
            assert 0 < s.stack < stack_size, (rnd, key)
            want = want_bodies[key]
            if key == "unmask" and rnd == "nodrop":
                want = (6 + 68 * K, want[1])
            assert (s.req, s.reply) == want, (rnd, key)
        # share_keys keeps coefficients + two share tables on its stack: the paint must see them
        assert rows["share_keys"].stack > 32 * max_nb + 2 * 32 * (max_nb + 1)
        # X25519 dominates: SHARE_KEYS does K agreements, ADVERTISE two key pairs
        assert rows["share_keys"].insns > rows["advertise"].insns
    cost = bench.masked_cost(kv)  # prepare = fixed + encoder init (timed apart): both parts real
    prepare = {s.key: s for s in bench.stages(kv)}["masked_prepare"]
    assert 0 < cost.fixed < prepare.insns
    assert cost.norm_per_param > 0 and cost.stream_per_word > 0
    sram = bench.client_sram(kv)
    assert sram.state == int(kv["sizeof_client"]) > 0
    assert sram.total < info.ram_used


def test_self_check_catches_a_wrong_unmasking(bench: ModuleType, tmp_path: Path) -> None:
    src = (ROOT / "bench" / "secagg_stages.c").read_text()
    good = "tfd_sa_prg_add(g_sum_masked, NW, key, 0, 1);"
    assert src.count(good) == 1
    bad = tmp_path / "secagg_stages_bad.c"
    shutil.copy(ROOT / "bench" / "bench_check.h", tmp_path)  # the app's own header, next to it
    bad.write_text(src.replace(good, "tfd_sa_prg_add(g_sum_masked, NW, key, 0, 0);"))
    cfg = bench.Config("mps2-an386", neighbours=K, threshold=T, params=N, chunk=16)
    with pytest.raises(bench.StageBenchError, match="unmasked sum != sum of encodings"):
        bench.run(cfg, shift=bench.DEFAULT_SHIFT, timeout=120.0, app=bad, build_dir=tmp_path / "out")
