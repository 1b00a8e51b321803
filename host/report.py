"""Reports of a federated run: the JSON record (``--report FILE.json``) and the
per-round table printed on the console.

JSON layout (one object)::

    kind            "fleet" | "simulate" | "demo"
    model           name, hash, n_params, training scheme
    config          rounds and the local training hyper-parameters
    participants    name, board, shard size (or status "refused" + why)
    rounds[]        round, accuracy, loss (global parameters, host held-out split),
                    completed, updates, aggregate_weight, seconds (wall),
                    bytes_to_devices / bytes_from_devices (everything on the wire),
                    payload_to_devices / payload_from_devices (parameter / update bytes),
                    devices[] (status, weight, local train / eval numbers,
                    train_ms, insns_per_sample, train_mem_bytes, sram_peak, bytes)
    centralised     accuracy / loss of centralised fine-tuning of the same
                    parameters on the union of the shards (same epochs budget)
    summary         round0_accuracy, final_accuracy, best_accuracy,
                    centralised_accuracy, gap_pp (final - centralised, points),
                    wall_seconds, mean bytes per round each way
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from .rounds import RoundRecord


def summarize(records: Sequence[RoundRecord], centralised: dict[str, Any] | None, wall: float) -> dict[str, Any]:
    trained = [r for r in records if r.round > 0]
    out: dict[str, Any] = {
        "rounds": len(trained),
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
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": model,
        "config": config,
        "participants": participants,
        "rounds": [r.as_dict() for r in records],
        "centralised": centralised,
        "summary": summarize(records, centralised, wall),
        **(extra or {}),
    }


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


def table_header() -> str:
    """KiB columns: bytes on the wire (virtual devices: the vector bytes)."""
    return (f"{'round':>5} {'acc':>7} {'loss':>7} {'devices':>7} {'weight':>6} "
            f"{'KiB->':>7} {'KiB<-':>7} {'wall s':>7}  per-device local acc")


def table_row(r: RoundRecord) -> str:
    ok = sum(1 for d in r.devices if d.status == "ok")
    local = " ".join(f"{d.train.eval_accuracy:.2f}" if d.train else f"[{d.status}]" for d in r.devices)
    flag = "" if r.completed or r.round == 0 else "  (round failed: parameters unchanged)"
    return (f"{r.round:>5} {r.accuracy:>7.4f} {r.loss:>7.4f} {ok if r.round else '-':>7} "
            f"{r.aggregate_weight if r.round else '-':>6} {_kb(r.traffic.wire_out or r.traffic.payload_out):>7} "
            f"{_kb(r.traffic.wire_in or r.traffic.payload_in):>7} "
            f"{r.seconds:>7.1f}  {local}{flag}")


def format_table(records: Sequence[RoundRecord]) -> str:
    return "\n".join([table_header(), *(table_row(r) for r in records)])


__all__ = ["build_report", "write_report", "json_clean", "summarize", "format_table", "table_header", "table_row"]
