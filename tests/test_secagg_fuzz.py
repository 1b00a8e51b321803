"""The SecAgg+ body fuzzer (firmware/native/fuzz_secagg.c, host/secagg/fuzz.py), briefly.

The stage bodies are untrusted input decoded from the wire table on the device:
the fuzz target mutates valid requests of every stage (and raw bodies of every
TFD_BODY) under AddressSanitizer + UndefinedBehaviorSanitizer and checks the
client's invariants after each request (nothing changes on a malformed or
out-of-round request, everything is wiped on a refusal, replies decode through
the table, decode-encode round trips).  libFuzzer when clang is installed,
else the target's own mutation driver; >= 1 M inputs: bench/secagg_fuzz.py.
"""

from __future__ import annotations

from tinyfed_host.secagg.fuzz import build_fuzzer, run_fuzzer

RUNS = 20_000


def test_secagg_body_fuzzer_finds_nothing(tmp_path) -> None:
    build = build_fuzzer("auto")
    res = run_fuzzer(build, RUNS, seed=7, workdir=tmp_path)
    assert res.crashes == 0, res.log[-4000:]
    assert res.inputs == RUNS, res.log[-2000:]
    if res.engine == "libfuzzer":
        # coverage-guided: the corpus grew beyond the 13 seeds and reached the stage code
        assert res.coverage is not None and res.coverage > 250, res.log[-2000:]
        assert res.corpus is not None and res.corpus > 13
