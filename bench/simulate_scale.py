"""Secure rounds at scale: wall time and peak memory of one SecAgg+ round of
``tinyfed simulate`` for N devices, on the built-in engine (the devices' C code
in-process, driven without the wire: host/direct.py) and on Flower's simulation
engine (each device a simulated Flower node), and Flower's overhead per round.

Each configuration runs in a fresh process: build (or reuse) a digits model,
make N shards, run ``--rounds R`` secure rounds of one local epoch; the figures
are the secure rounds' wall seconds (the engine's per-round ``seconds``, mean of
the rounds after the first), this process's CPU seconds per round (all its
threads, between consecutive round rows of the table: training, the four SecAgg+
stages, evaluation, checkpoint), the SecAgg+ stages' wall seconds, and the peak
resident memory (``ru_maxrss``; on Flower's engine also the simulation workers',
sampled, and their CPU seconds for the whole run).  The 1-minute load average is
printed with the figures: wall seconds on a shared 2-core machine are not a
controlled benchmark; CPU seconds are the steadier figure.

    .venv/bin/python bench/simulate_scale.py                    # 100, 1000, 10000 builtin; 100 flower
    .venv/bin/python bench/simulate_scale.py --devices 1000 --engines builtin --rounds 3
    .venv/bin/python bench/simulate_scale.py --json build/bench-scale/results.json

On the built-in engine it also prints where the CPU goes (per round, mean of all rounds):
each SecAgg+ stage of the devices' C clients, the SecAgg+ server's Python around them,
training, the parameter push.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
from digits_build import INSNS_PER_SAMPLE, build_digits  # noqa: E402  (bench/ is on sys.path)


def _rss_of(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _cpu_of(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _ray_workers() -> list[int]:
    """This process's simulation workers (Ray actors are children of the raylet this process started)."""
    parent: dict[int, int] = {}
    names: dict[int, bytes] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                names[int(p.name)] = (p / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                pass
    me = os.getpid()

    def mine(pid: int) -> bool:
        for _ in range(16):
            pid = parent.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    return [pid for pid, cmd in names.items() if b"ClientAppActor" in cmd and mine(pid)]


def _time_parts() -> dict[str, float]:
    """CPU seconds (this process, all threads) spent in each part of a built-in round: the
    devices' SecAgg+ stages (one batched C call each), the SecAgg+ server around them,
    training, the parameter push -- by wrapping those calls (this process only)."""
    from tinyfed_host import direct
    from tinyfed_host.secagg import server

    parts: dict[str, float] = {}

    lock = threading.Lock()

    def wrap(cls: type, name: str, part: str | None, clock: Callable[[], float] = time.process_time) -> None:
        orig = getattr(cls, name)

        def timed(self: object, *args: object, **kw: object) -> object:
            c = clock()
            try:
                return orig(self, *args, **kw)
            finally:
                key = part or f"device SecAgg+ {args[0]}"
                with lock:
                    parts[key] = parts.get(key, 0.0) + clock() - c
        setattr(cls, name, timed)

    wrap(direct.SecAggBatch, "__call__", None)  # its C threads: the process's CPU while it runs
    # devices train on every core, each job in one thread: that thread's CPU
    wrap(direct.DirectParticipant, "train", "training", time.thread_time)
    wrap(direct.DirectParticipant, "push_params", "parameters to devices", time.thread_time)
    wrap(server.SecAggServer, "run", "SecAgg+ (server + device stages)")
    return parts


def run_one(build: Path, devices: int, engine: str, rounds: int, samples: int) -> dict:
    """One configuration, in this process."""
    import tinyfed

    parts = _time_parts() if engine == "builtin" else {}

    peak = [0]
    worker_cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:  # the simulation workers' memory and CPU (Flower's engine runs devices there)
        while not stop.wait(0.5):
            pids = _ray_workers()
            peak[0] = max(peak[0], _rss_of(pids))
            for pid in pids:
                worker_cpu[pid] = max(worker_cpu.get(pid, 0.0), _cpu_of(pid))

    if engine == "flower":
        threading.Thread(target=sample, daemon=True).start()
    cfg = tinyfed.FleetConfig(updates=rounds, train=tinyfed.TrainConfig(epochs=1, lr=0.02, momentum=0.9, batch=8))
    marks: list[float] = []  # this process's CPU seconds (all threads) when each round's table row is printed

    def log(line: str) -> None:
        words = line.split()
        if words and words[0].isdigit():
            marks.append(time.process_time())

    c0 = time.process_time()
    t0 = time.monotonic()
    res = tinyfed.simulate(devices=devices, build=build, config=cfg, centralised=False, engine=engine,
                           samples_per_device=samples, state=build / f"bench-{engine}-{devices}.json",
                           timing=tinyfed.TimingOptions(insns_per_sample=INSNS_PER_SAMPLE), log=log)
    wall = time.monotonic() - t0
    stop.set()
    rows = res.records[1:]
    secs = [r.seconds for r in rows]
    cpus = [b - a for a, b in zip(marks, marks[1:])][-len(rows):] if len(marks) > len(rows) else []
    steady = secs[1:] if len(secs) > 1 else secs
    steady_cpu = cpus[1:] if len(cpus) > 1 else cpus
    sec = rows[-1].secure or {}
    return {"engine": engine, "devices": devices, "rounds": len(rows), "round_seconds": [round(s, 2) for s in secs],
            "secure_round_s": round(sum(steady) / len(steady), 2),
            "round_cpu_s": round(sum(steady_cpu) / len(steady_cpu), 2) if steady_cpu else None,
            "aggregate_s": round(sum(r.aggregate_seconds for r in rows[1:] or rows) / len(rows[1:] or rows), 2),
            "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - c0, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
            "worker_peak_rss_mb": round(peak[0] / 2**20, 0) if peak[0] else None,
            "worker_cpu_s": round(sum(worker_cpu.values()), 1) if worker_cpu else None,
            "completed": all(r.completed for r in rows), "neighbours": sec.get("degree"),
            "masked_input_bytes_per_device": (sec.get("bytes_per_device") or {}).get("MASKED_INPUT", {}).get("from_device"),
            "accuracy": round(rows[-1].accuracy, 4), "load_avg": os.getloadavg()[0],
            "cpu_s_per_round_by_part": _per_round(parts, len(rows))}


def _per_round(parts: dict[str, float], rounds: int) -> dict[str, float]:
    out = {k: round(v / max(1, rounds), 2) for k, v in parts.items()}
    both = out.pop("SecAgg+ (server + device stages)", None)
    if both is not None:
        out["SecAgg+ server (Python)"] = round(both - sum(v for k, v in out.items() if k.startswith("device")), 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build" / "bench-scale" / "model"))
    ap.add_argument("--devices", type=int, nargs="*", default=[100, 1000, 10000])
    ap.add_argument("--engines", nargs="*", default=["builtin", "flower"], choices=["builtin", "flower"])
    ap.add_argument("--flower-devices", type=int, nargs="*", default=[100],
                    help="device counts run on Flower's engine (default 100)")
    ap.add_argument("--rounds", type=int, default=2, help="secure rounds per configuration (the first is excluded "
                                                           "from the per-round figure when there are more)")
    ap.add_argument("--samples-per-device", type=int, default=16)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "DEVICES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    build = build_digits(Path(a.build))
    if a.one:
        print(json.dumps(run_one(build, int(a.one[1]), a.one[0], a.rounds, a.samples_per_device)))
        return 0
    jobs = [("builtin", n) for n in a.devices if "builtin" in a.engines]
    jobs += [("flower", n) for n in a.flower_devices if "flower" in a.engines]
    results = []
    print(f"{'engine':<8} {'devices':>7} {'s/round':>8} {'cpu s/round':>11} {'SecAgg s':>8} {'rounds s':>20} "
          f"{'RSS MB':>7} {'worker MB':>9} {'load':>5}", flush=True)
    for engine, n in jobs:
        p = subprocess.run([sys.executable, __file__, "--build", str(build), "--rounds", str(a.rounds),
                            "--samples-per-device", str(a.samples_per_device), "--one", engine, str(n)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(f"{engine:<8} {n:>7} failed:\n{p.stderr[-1500:]}", flush=True)
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{engine:<8} {n:>7} {r['secure_round_s']:>8.2f} {r['round_cpu_s'] or '-':>11} {r['aggregate_s']:>8.2f} "
              f"{str(r['round_seconds']):>20} {r['peak_rss_mb']:>7.0f} {r['worker_peak_rss_mb'] or '-':>9} "
              f"{r['load_avg']:>5.1f}", flush=True)
        if r.get("cpu_s_per_round_by_part"):
            print("         CPU s per round by part (mean of all rounds): " + ", ".join(
                f"{k} {v}" for k, v in r["cpu_s_per_round_by_part"].items()), flush=True)
    by = {(r["engine"], r["devices"]): r for r in results}
    for n in a.flower_devices:
        if ("builtin", n) in by and ("flower", n) in by:
            d = by[("flower", n)]["secure_round_s"] - by[("builtin", n)]["secure_round_s"]
            f, b = by[("flower", n)], by[("builtin", n)]
            print(f"Flower's overhead per secure round at {n} devices: {d:+.2f} s wall "
                  f"({f['secure_round_s']:.2f} vs {b['secure_round_s']:.2f} s); driver CPU {f['round_cpu_s']} vs "
                  f"{b['round_cpu_s']} s per round, + {f['worker_cpu_s']} CPU-s in the simulation workers "
                  f"over {f['rounds']} rounds and start-up")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
