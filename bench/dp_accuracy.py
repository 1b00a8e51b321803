"""Differential privacy and accuracy: epsilon (at delta) and the final accuracy of
``tinyfed simulate`` with SecAgg+ and central DP (``--dp central
--dp-noise-multiplier Z``) or distributed DP (``--dp distributed``) for a few
noise multipliers, beside the same run without noise.

Each run: the digits model (built once into ``build/bench-dp``), N in-process
devices (the boards' C code, each masking its own update), R synchronous secure
rounds of one local epoch, the same shards and seeds; the host adds the exact
discrete Gaussian noise sigma = z * (C 2^f + sqrt(d)) to the unmasked integer sum
(host/secagg/dp.py) and epsilon is the RDP accounting of R Gaussian mechanisms
without amplification (CKS20 Theorem 14 + dp_accounting's conversion).  The
figures are what the run's JSON report says (``dp`` and ``summary``).

Distributed DP: each device adds its discrete Gaussian to its encoded update before
masking (firmware/src/secagg/dp_noise.c), sigma_dev^2 = (z Delta)^2 / (t - 1), so the noise
of any t - 1 devices carries z; epsilon accounts each round as a Gaussian mechanism of the
effective multiplier z_eff >= z (host/secagg/dp_distributed.py).  At the same z the two
mechanisms have (almost) the same epsilon; the distributed sum carries |U| / (t - 1) times
the central noise variance (the price of not trusting the host, and of dropouts).

    .venv/bin/python bench/dp_accuracy.py [--devices 20] [--rounds 10] [--z 0.5 1 2] [--clip 1.0]
        [--mechanism central distributed]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from digits_build import INSNS_PER_SAMPLE, build_digits  # noqa: E402  (bench/ is on sys.path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--z", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="noise multipliers")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--mechanism", nargs="+", choices=("central", "distributed"), default=["central", "distributed"])
    ap.add_argument("--build", type=Path, default=ROOT / "build" / "bench-dp")
    a = ap.parse_args(argv)

    import tinyfed

    build = build_digits(Path(a.build))
    cfg = tinyfed.FleetConfig(updates=a.rounds, train=tinyfed.TrainConfig(epochs=1, lr=0.05, momentum=0.9, batch=8))
    base = tinyfed.SimulateOptions(devices=a.devices, build=build, config=cfg, centralised=False,
                                   timing=tinyfed.TimingOptions(insns_per_sample=INSNS_PER_SAMPLE))
    rows = []
    runs = [("none", 0.0)] + [(m, z) for z in a.z for m in a.mechanism]
    for mech, z in runs:
        sec = tinyfed.SecureOptions(clip=a.clip, dp=mech if z > 0 else "central", dp_noise_multiplier=z,
                                    dp_delta=a.delta, seed=0)
        res = tinyfed.simulate(dataclasses.replace(base, secure=sec), log=lambda s: None)
        dp = res.report["dp"]
        s = res.report["summary"]
        rows.append((mech, z, dp["epsilon"] if dp else None, s["round0_accuracy"], s["final_accuracy"],
                     s["best_accuracy"]))
        print(f"  {mech:<12} z={z:<5g} epsilon={'-' if dp is None else format(dp['epsilon'], '.3f'):<8} "
              f"accuracy {s['round0_accuracy']:.4f} -> {s['final_accuracy']:.4f}", flush=True)
    print(f"\ndigits student, {a.devices} in-process devices, {a.rounds} synchronous SecAgg+ rounds, clip {a.clip:g}, "
          f"delta {a.delta:g}, no amplification:")
    print("  mechanism     z        epsilon   accuracy round 0   final    best")
    for mech, z, eps, a0, af, ab in rows:
        print(f"  {mech:<12}  {z:<8g} {'none' if eps is None else format(eps, '.3f'):>8}   {a0:>16.4f}   "
              f"{af:.4f}   {ab:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
