"""SecAgg+ costs, Python-only simulation of the server with simulated clients
(host/secagg): payload bytes per device per stage against the plain update,
and the host's time to unmask, for n clients on the neighbourhood graph.

    .venv/bin/python bench/secagg.py [--clients 100,1000] [--params 2000] [--drop 0.05]

For each n: degree k = default_degree(n), threshold t = default_threshold(k),
a fraction ``--drop`` of the clients drops before MASKED_INPUT (so the server
must rebuild their mask keys) and the same fraction after it (their self
masks come from the others' shares).  Bytes are message payloads (framing,
CRC and chunk headers come on top, the same for the plain path); the plain
update is the ENC_F32 MODEL_UPDATE payload, 4 bytes per parameter.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits
from tinyfed_host.secagg.graph import default_degree, default_threshold
from tinyfed_host.secagg.server import STAGES
from tinyfed_host.secagg.simulate import simulate_round


def run(n: int, params: int, drop: float, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    ups = [rng.normal(0, 0.02, params).astype(np.float32) for _ in range(n)]
    ws = [int(w) for w in rng.integers(10, 100, n)]
    enc = Encoding(1.0, choose_fraction_bits(n, 1.0), 128)
    k = default_degree(n)
    t = default_threshold(k)
    nd = int(round(drop * n))
    picks = rng.permutation(np.arange(1, n + 1))
    before = {int(i): "MASKED_INPUT" for i in picks[:nd]}
    after = {int(i): "MASKED_INPUT" for i in picks[nd:2 * nd]}
    t0 = time.perf_counter()
    srv, eps, g = simulate_round(ups, ws, enc, degree=k, threshold=t, seed=seed, die_before=before,
                                 die_after=after, keep_encoding=True)
    total_s = time.perf_counter() - t0
    res = srv.result
    assert res is not None
    exp = np.zeros(params + 1, dtype=np.uint64)
    for e in eps:
        if e.id in res.survivors:
            exp += e.client.encoded.astype(np.uint64)
    exact = bool(np.array_equal(res.sum_words, (exp % (1 << 32)).astype(np.uint32)))
    plain = 4 * params
    per_stage = {s: srv.stats[s].as_dict() for s in STAGES}
    return {"n": n, "k": k, "t": t, "survivors": len(res.survivors), "exact": exact,
            "dropouts": res.dropouts(), "plain_update_bytes": plain,
            "stages": per_stage,
            "masked_over_plain": per_stage["MASKED_INPUT"]["bytes_from_device_mean"] / plain,
            "unmask_stage_s": srv.stats["UNMASK"].seconds, "host_unmask_s": res.unmask_seconds,
            "round_s": total_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", default="100,1000")
    ap.add_argument("--params", type=int, default=2000)
    ap.add_argument("--drop", type=float, default=0.05)
    a = ap.parse_args()
    for n in (int(x) for x in a.clients.split(",")):
        r = run(n, a.params, a.drop)
        print(f"n={r['n']} k={r['k']} t={r['t']} survivors={r['survivors']} exact={r['exact']} "
              f"dropouts={ {s: len(v) for s, v in r['dropouts'].items()} }")
        print(f"  plain update {r['plain_update_bytes']} B; masked input {r['masked_over_plain']:.4f} x plain")
        for s, d in r["stages"].items():
            print(f"  {s:15s} to device {d['bytes_to_device_mean']:9.1f} B  from device "
                  f"{d['bytes_from_device_mean']:9.1f} B  (mean per device; stage {d['seconds']:.2f} s)")
        print(f"  host unmask (rebuild secrets + remove masks): {r['host_unmask_s']:.3f} s; "
              f"whole simulated round {r['round_s']:.1f} s")


if __name__ == "__main__":
    main()
