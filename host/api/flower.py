"""tinyfed across machines with Flower: a gateway per machine that owns its boards
(``gateway``), and tinyfed's Flower app run on a SuperLink over every board of
every gateway (``flower_run``)::

    # on each machine with boards on USB (long-lived)
    with tinyfed.gateway(superlink="server:9093", ports=("/dev/ttyACM0", "/dev/ttyACM1"),
                         root_certificates="ca.pem") as gw:
        gw.serve_forever()

    # anywhere with the Flower CLI: the ServerApp runs on the SuperLink's machine
    run = tinyfed.flower_run(superlink="server:9093", root_certificates=Path("ca.pem"),
                             build=Path("/srv/tinyfed/build/model"), min_devices=8,
                             report=Path("/srv/tinyfed/flower.json"))
    print(run.report["rounds"][-1]["accuracy"])

``simulate(engine="flower")`` runs a simulation on Flower's simulation engine instead
(tinyfed_host.flower.simulation).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tinyfed_host.flower.gateway import Gateway, GatewayOptions
from tinyfed_toolchain.facts.errors import DeviceFailure

from .options import FlowerRunOptions


def gateway(options: GatewayOptions | None = None, /, *, log: Callable[[str], None] = print,
            workdir: Path | None = None, **fields: Any) -> Gateway:
    """A started gateway: its boards opened (once, for its whole life), its Flower SuperNode
    joined to the federation.  A context manager (stops both on exit); ``serve_forever()``
    blocks until SIGTERM / Ctrl-C."""
    opts = options if options is not None else GatewayOptions(**fields)
    return Gateway(opts, log=log, workdir=workdir).start()


@dataclass
class FlowerRunResult:
    """What ``flower_run`` got back: the run's JSON report, if it asked for one (read after the
    run, when the SuperLink's machine is this one)."""

    report_path: Path | None
    report: dict[str, Any] | None


def _absolute(o: FlowerRunOptions) -> FlowerRunOptions:
    """Paths made absolute (the ServerApp runs in the SuperLink's folder)."""
    def ab(p: Path | None) -> Path | None:
        return Path(p).resolve() if p else None

    return dataclasses.replace(o, build=Path(o.build).resolve(), report=ab(o.report), plot=ab(o.plot),
                               state=ab(o.state))


def flower_run(options: FlowerRunOptions | None = None, /, *, log: Callable[[str], None] = print,
               **fields: Any) -> FlowerRunResult:
    """``flwr run`` of tinyfed's Flower app on the SuperLink at ``superlink``: the ServerApp waits
    for ``min_devices`` boards on the gateways, then runs the federated rounds (SecAgg+ end to end
    from each board unless ``secure=None``); the run's log streams here."""
    from tinyfed_host.flower.launch import flwr_run
    from tinyfed_host.flower.options import to_run_config

    opts = _absolute(options if options is not None else FlowerRunOptions(**fields))
    opts.check()
    rc = flwr_run(opts.superlink, to_run_config(opts.server_app_run()), flwr_home=Path(opts.flwr_home).resolve(),
                  insecure=opts.insecure, root_certificates=str(opts.root_certificates) if opts.root_certificates else None)
    if rc != 0:
        raise DeviceFailure(f"flwr run exited with status {rc} (the run's log above says why)")
    report = None
    if opts.report and Path(opts.report).is_file():
        report = json.loads(Path(opts.report).read_text())
    return FlowerRunResult(opts.report, report)


__all__ = ["FlowerRunResult", "flower_run", "gateway"]
