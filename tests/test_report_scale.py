"""Output at scale: a step of thousands of devices is one short table row (ok/total,
dropouts, min/median/max local accuracy) while the JSON report keeps every device;
a small fleet still lists its devices; the progress line is drawn only when asked
and is cleared before other output."""

from __future__ import annotations

import io

from tinyfed_host.fl_client import TrainResult
from tinyfed_host.progress import Progress
from tinyfed_host.report import LIST_DEVICES, build_report, device_summary, table_row
from tinyfed_host.rounds import DeviceRound, RoundRecord


def _train(correct: int, of: int = 100) -> TrainResult:
    return TrainResult(round=0, samples=of, seen=of, steps=1, train_correct=correct, train_loss_sum=1.0,
                       eval_samples=of, eval_correct=correct, eval_loss_sum=1.0, elapsed_ms=1, insns_per_sample=0,
                       train_mem_bytes=0, sram_peak=0)


def _step(n: int) -> RoundRecord:
    devs = []
    for k in range(n):
        status = "lost" if k % 10 == 3 else "timeout" if k % 10 == 7 else "stale" if k % 50 == 5 else "ok"
        devs.append(DeviceRound(f"virtual{k}", status, train=_train(k % 100) if status in ("ok", "stale") else None))
    # two devices trained but left SecAgg+ before their masked input: dropouts, their accuracy not counted
    secure = {"dropouts": {"MASKED_INPUT": ["virtual99", "virtual98"]}}
    return RoundRecord(1, 0.5, 1.0, devices=devs, updates=n, aggregate_weight=n, secure=secure)


def test_thousands_of_devices_make_one_short_row_and_every_device_is_in_the_report() -> None:
    r = _step(1000)
    s = device_summary(r)
    ok_acc = sorted(k % 100 / 100 for k in range(1000)
                    if k % 10 not in (3, 7) and k % 50 != 5 and k not in (98, 99))
    assert s == {"devices": 1000, "ok": len(ok_acc), "dropouts": 100 + 100 + 2, "stale": 20, "absent": 0,
                 "local_accuracy_min": ok_acc[0], "local_accuracy_median": ok_acc[len(ok_acc) // 2],
                 "local_accuracy_max": ok_acc[-1]}
    row = table_row(r)
    assert len(row) < 160 and "virtual" not in row and f"{s['ok']}/1000" in row
    assert row.endswith(f"{ok_acc[0]:.2f}/{ok_acc[len(ok_acc) // 2]:.2f}/{ok_acc[-1]:.2f}") and " 202 " in row
    rep = build_report("simulate", model={}, config={}, participants=[], records=[r], centralised=None, wall=1.0)
    assert len(rep["rounds"][0]["devices"]) == 1000 and rep["rounds"][0]["device_summary"] == s


def test_a_small_fleet_lists_each_device_in_name_order() -> None:
    devs = [DeviceRound(f"board{k}", "ok", train=_train(50 + k)) for k in (10, 2, 1)]
    devs.append(DeviceRound("board3", "lost"))
    r = RoundRecord(1, 0.5, 1.0, devices=devs)
    row = table_row(r)
    assert row.endswith("0.51/0.52/0.60  [0.51 0.52 lost 0.60]") and len(devs) <= LIST_DEVICES
    assert device_summary(r)["dropouts"] == 1


def test_a_restored_step_keeps_its_reported_summary() -> None:
    first = build_report("simulate", model={}, config={}, participants=[], records=[_step(20)], centralised=None,
                         wall=1.0)["rounds"][0]
    back = RoundRecord.from_dict(first)  # as a resumed run has it: no devices[]
    again = build_report("simulate", model={}, config={}, participants=[], records=[back], centralised=None,
                         wall=1.0)["rounds"][0]
    assert again["device_summary"] == first["device_summary"] and again["device_summary"]["devices"] == 20


def test_progress_line_only_when_enabled_and_cleared_before_a_log_line() -> None:
    out, logged = io.StringIO(), []
    p = Progress(3, enabled=True, every=0.0, stream=out)
    log = p.wrap(logged.append)
    p.tick()
    p.stage("SecAgg+ SHARE_KEYS (3 devices)")
    assert "1/3 devices trained" in out.getvalue() and "SHARE_KEYS" in out.getvalue()
    log("a line")
    assert logged == ["a line"] and out.getvalue().endswith("\r")  # the line was wiped first
    quiet = io.StringIO()
    q = Progress(3, enabled=False, stream=quiet)
    q.tick()
    q.stage("x")
    q.wrap(logged.append)("b")
    assert quiet.getvalue() == ""
