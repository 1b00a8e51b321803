"""Reports of a federated run: the JSON record (``--report FILE.json``) and the
per-round table printed on the console.

JSON layout (one object)::

    kind            "fleet" | "simulate" | "demo" | "flower"
    engine          "builtin" (this process ran the rounds) | "flower" (a Flower ServerApp:
                    tinyfed flower run, or simulate --engine flower)
    devices         participants of the run (boards or simulated devices)
    strategy        "sync" | "fedbuff" | "ftte"
    secure          true: SecAgg+ (the host saw only cohort sums)
    time_to_target_s  clock time (virtual seconds in simulation, wall seconds on
                    boards) of the first step whose global accuracy reached
                    --target-accuracy; null if never reached (or no target)
    payload_bytes_per_update  mean bytes of one device's update vector as sent:
                    the MODEL_UPDATE payload (plain) or the masked vector SA_MASKED
                    (secure)
    device_train_mem_bytes    the devices' training memory (the plan's
                    TFD_TRAIN_MEM_BYTES: arena / float work area, parameters,
                    gradients, momentum)
    model           name, hash, n_params, training scheme
    config          steps, strategy options and the local training hyper-parameters
    participants    name, board, shard size (or status "refused" + why)
    rounds[]        one per aggregation step: round (step), version, accuracy, loss
                    (global parameters, host held-out split), time_s (clock time at
                    its end), updates (aggregated), stale_dropped, mean_staleness,
                    bytes_up / bytes_down (everything on the wire, device -> host /
                    host -> device, during the step), completed, aggregate_weight
                    (samples), seconds (wall), payload_to_devices /
                    payload_from_devices (parameter / update bytes), devices[]
                    (status, weight, version, staleness, public_weight, local
                    train / eval numbers, train_ms, insns_per_sample,
                    train_mem_bytes, sram_peak, bytes), cohort (the cohort the
                    step applied or failed: id, state, members, formed_version,
                    applied_version, formed_at_s / done_at_s (clock), in_flight
                    (cohorts in flight when it formed, itself included),
                    secagg_seconds (virtual: its slowest member's SecAgg+ time),
                    wall_seconds, error), device_summary (devices,
                    ok, dropouts, stale, absent, local_accuracy_min / _median /
                    _max: what the per-round table prints)
    flower          (engine flower) Flower messages, relay bytes to / from the
                    gateways, seconds waiting for replies, gateways
    centralised     accuracy / loss of centralised fine-tuning of the same
                    parameters on the union of the shards (same epochs budget)
    summary         round0_accuracy, final_accuracy, best_accuracy,
                    centralised_accuracy, gap_pp (final - centralised, points),
                    wall_seconds, mean bytes per round each way
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

from .rounds import RoundRecord


def time_to_target(records: Sequence[RoundRecord], target: float | None) -> float | None:
    """Clock time of the first step whose accuracy reached ``target`` (None: never, or no target)."""
    if target is None:
        return None
    for r in records:
        if r.accuracy == r.accuracy and r.accuracy >= target:
            return float(r.time_s)
    return None


def payload_per_update(records: Sequence[RoundRecord]) -> float | None:
    """Mean bytes of one update vector as a device sent it (MODEL_UPDATE plain, SA_MASKED secure)."""
    sizes: list[float] = []
    for r in records:
        if r.round == 0:
            continue
        if r.secure:
            b = ((r.secure.get("bytes_per_device") or {}).get("MASKED_INPUT") or {}).get("from_device")
            if b:
                sizes += [float(b)] * max(1, r.updates)
            continue
        d = r.as_dict().get("devices") or []
        sizes += [float(x["payload_in"]) for x in d if x.get("status") == "ok" and x.get("payload_in")]
    return sum(sizes) / len(sizes) if sizes else None


def summarize(records: Sequence[RoundRecord], centralised: dict[str, Any] | None, wall: float) -> dict[str, Any]:
    trained = [r for r in records if r.round > 0]
    out: dict[str, Any] = {
        "rounds": len(trained),
        "updates_aggregated": sum(r.updates for r in trained),
        "stale_dropped": sum(r.stale_dropped for r in trained),
        "final_time_s": records[-1].time_s if records else None,
        "round0_accuracy": records[0].accuracy if records else None,
        "final_accuracy": records[-1].accuracy if records else None,
        "best_accuracy": max((r.accuracy for r in records), default=None),
        "round0_loss": records[0].loss if records else None,
        "final_loss": records[-1].loss if records else None,
        "wall_seconds": round(wall, 2),
        "mean_bytes_to_devices_per_round": (sum(r.traffic.wire_out for r in trained) / len(trained)) if trained else 0,
        "mean_bytes_from_devices_per_round": (sum(r.traffic.wire_in for r in trained) / len(trained)) if trained else 0,
        "failed_rounds": [r.round for r in trained if not r.completed],
    }
    if centralised is not None and records:
        out["centralised_accuracy"] = centralised["accuracy"]
        out["gap_pp"] = 100.0 * (records[-1].accuracy - centralised["accuracy"])
    return out


def build_report(kind: str, *, model: dict[str, Any], config: dict[str, Any], participants: list[dict[str, Any]],
                 records: Sequence[RoundRecord], centralised: dict[str, Any] | None, wall: float,
                 strategy: str = "sync", secure: bool = False, target_accuracy: float | None = None,
                 virtual_time: bool = False, train_mem_bytes: int | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "strategy": strategy,
        "secure": bool(secure),
        "time_to_target_s": time_to_target(records, target_accuracy),
        "target_accuracy": target_accuracy,
        "time_base": "virtual seconds (device clock model)" if virtual_time else "wall seconds",
        "payload_bytes_per_update": payload_per_update(records),
        "device_train_mem_bytes": train_mem_bytes,
        "model": model,
        "config": config,
        "participants": participants,
        "rounds": [_round_row(r) for r in records],
        "centralised": centralised,
        "summary": summarize(records, centralised, wall),
        **(extra or {}),
    }


def _round_row(r: RoundRecord) -> dict[str, Any]:
    row = r.as_dict()
    # a step restored from a checkpoint keeps the summary it was reported with (its devices[] are not kept)
    row.setdefault("device_summary", device_summary(r))
    return row


def json_clean(v: Any) -> Any:
    """NaN / inf are not JSON: write them as null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_clean(x) for x in v]
    return v


def write_report(path: Path, report: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_clean(report), indent=2, default=str) + "\n")
    return path


def _kb(n: float) -> str:
    return f"{n / 1024:.1f}"


#: device statuses that mean "was asked to train and did not deliver" (dropouts)
DROPOUT = ("lost", "timeout", "error")
#: up to this many devices, the table also lists each device's local accuracy
LIST_DEVICES = 8


def device_summary(r: RoundRecord) -> dict[str, Any]:
    """One step's devices in a few numbers (the table's columns; per-device detail stays in
    ``devices[]``): how many reported, ok, dropped out, absent / refused / stale, and the min /
    median / max of the local accuracy (each ok device's evaluation of its trained model on its
    own shard)."""
    # a device that trained but whose update did not reach the aggregate (it dropped out of
    # secure aggregation) counts as a dropout, not with the accuracy of its local model
    dropped = _secure_dropouts(r)
    st = ["dropped" if d.name in dropped and d.status == "ok" else d.status for d in r.devices]
    acc = sorted(d.train.eval_accuracy for d, s in zip(r.devices, st)
                 if s == "ok" and d.train is not None and d.train.eval_samples)
    q = (lambda f: acc[min(len(acc) - 1, int(f * (len(acc) - 1) + 0.5))]) if acc else (lambda f: None)
    return {"devices": len(st), "ok": st.count("ok"), "dropouts": sum(st.count(s) for s in (*DROPOUT, "dropped")),
            "stale": st.count("stale"), "absent": st.count("absent") + st.count("refused"),
            "local_accuracy_min": q(0.0), "local_accuracy_median": q(0.5), "local_accuracy_max": q(1.0)}


def _secure_dropouts(r: RoundRecord) -> set[str]:
    return {n for names in ((r.secure or {}).get("dropouts") or {}).values() for n in names}


def table_header() -> str:
    """KiB columns: bytes on the wire (in-process devices: the link they would use)."""
    return (f"{'step':>5} {'acc':>7} {'loss':>7} {'updates':>7} {'stale':>5} {'weight':>6} "
            f"{'KiB->':>7} {'KiB<-':>7} {'time s':>9} {'devices':>9} {'drop':>5}  local acc min/med/max")


def table_row(r: RoundRecord) -> str:
    s = device_summary(r)
    flag = "" if r.completed or r.round == 0 else "  (step failed: parameters unchanged)"
    local = ("/".join(f"{s[k]:.2f}" for k in ("local_accuracy_min", "local_accuracy_median", "local_accuracy_max"))
             if s["local_accuracy_min"] is not None else "-")
    if 0 < len(r.devices) <= LIST_DEVICES:  # a small fleet: each device too
        dropped = _secure_dropouts(r)
        local += "  [" + " ".join("dropped" if d.name in dropped else f"{d.train.eval_accuracy:.2f}"
                                  if d.train and d.status == "ok" else d.status
                                  for d in sorted(r.devices, key=lambda d: _natural(d.name))) + "]"
    devices = f"{s['ok']}/{s['devices']}" if r.round else "-"
    return (f"{r.round:>5} {r.accuracy:>7.4f} {r.loss:>7.4f} {r.updates if r.round else '-':>7} "
            f"{r.stale_dropped if r.round else '-':>5} "
            f"{r.aggregate_weight if r.round else '-':>6} {_kb(r.traffic.wire_out or r.traffic.payload_out):>7} "
            f"{_kb(r.traffic.wire_in or r.traffic.payload_in):>7} "
            f"{r.time_s:>9.1f} {devices:>9} {s['dropouts'] if r.round else '-':>5}  {local}{flag}")


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def format_table(records: Sequence[RoundRecord]) -> str:
    return "\n".join([table_header(), *(table_row(r) for r in records)])


__all__ = ["build_report", "write_report", "json_clean", "summarize", "format_table", "table_header", "table_row",
           "time_to_target", "payload_per_update", "device_summary"]
