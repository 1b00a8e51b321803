"""tinyfed's Flower ServerApp: tinyfed's round engine and SecAgg+ server,
with every board behind every gateway as its own participant.

``flwr run`` (or ``tinyfed flower run``) starts it on the SuperLink's
machine.  It finds the gateways (Flower nodes started by ``tinyfed
gateway``), waits for ``min-devices`` boards, then runs the same federated
rounds as ``tinyfed fleet`` -- FedAvg, secure aggregation by default, the
report and the per-round table -- where each board is a
:class:`~tinyfed_host.flower.participant.FlowerParticipant`.  SecAgg+ runs
between this server and each board's own C client: a gateway relays the
sealed and masked bodies; neither it nor the SuperLink sees an individual
update.

The run's options are the app's run config, read into a
:class:`tinyfed.FlowerRunOptions` (:mod:`tinyfed_host.flower.options`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from tinyfed_toolchain.facts.errors import DeviceFailure, OptionsError

from ..secagg.aggregator import SecureAggregator
from .options import ServerAppRun

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    from .options import from_run_config

    run_flower(grid, from_run_config(dict(context.run_config)))


def _natural(name: str) -> list[Any]:
    """Sort key: gw2/dev10 after gw2/dev9."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def run_flower(grid: Grid, opts: ServerAppRun, *, log: Callable[[str], None] = print,
               build: Any = None, extra: dict[str, Any] | None = None, manifest: Any = None) -> Any:
    """One federated run (``opts``: a :class:`~tinyfed_host.flower.options.ServerAppRun`) over the
    gateways of ``grid``; returns the run's RunResult (its report has ``engine`` = ``flower``).
    ``build``: the FlBuild (default: loaded from ``opts.build``; a simulation passes its own, whose
    shards are the simulated devices'); ``extra``: more report keys; ``manifest``: the fleet manifest
    the boards pin (default: the build's, ``<build>/fleet/manifest.json``; a simulation passes the one
    it provisioned its devices with)."""
    from ..experiment import FlBuild
    from ..fl_run import run_federated
    from ..report import write_report
    from .participant import SecAggBatch, make_participants
    from .router import Router

    build = build if build is not None else FlBuild.load(Path(opts.build))
    sv = opts.server
    router = Router(grid, window=sv.window, latency=sv.latency, log=log)
    try:
        devs = router.wait_for_devices(sv.min_devices, sv.wait)
        online = sorted((n for n, d in devs.items() if d.online), key=_natural)
        if len(online) < sv.min_devices:
            raise DeviceFailure(f"{len(online)} board(s) online after {sv.wait:.0f} s, min-devices is "
                                f"{sv.min_devices}: start more gateways or lower min-devices")
        names = sorted(devs, key=_natural)
        log(f"[flower] {len(online)} of {len(names)} board(s) online on {len(router.gateways())} gateway(s)")
        if sv.check_exact and not all(devs[n].info.get("test_image") for n in online):
            raise OptionsError("check-exact needs TEST images on every board (tinyfed build --test-images)")
        batch = SecAggBatch(router, check_exact=sv.check_exact)
        parts = make_participants(router, names, batch, min_devices=sv.min_devices, wait=sv.wait)
        agg = None
        if opts.secure is not None:
            sec = dataclasses.replace(opts.secure, fleet_size=len(parts))
            agg = (ExactCheckingAggregator(sec, log=log, manifest=manifest) if sv.check_exact
                   else SecureAggregator(sec, log=log, manifest=manifest))
            if isinstance(agg, ExactCheckingAggregator):
                agg.batch = batch
        # one SecAgg+ cohort at a time: the gateways' relay was not checked with two instances at once
        config = dataclasses.replace(opts.config, max_cohorts=1)
        res = run_federated("flower", build, parts, config, aggregator=agg,
                            plot_path=Path(opts.plot) if opts.plot else None, with_centralised=opts.centralised,
                            log=log, engine="flower", state_path=Path(opts.state or build.out_dir / "flower_state.json"),
                            resume=opts.resume, extra=extra)
        res.report["flower"] = {**router.stats.as_dict(), "gateways": sorted(set(router.gateways().values()))}
        if opts.report:
            res.report_path = write_report(Path(opts.report), res.report)
            log(f"report: {res.report_path}")
        log(f"[flower] {router.stats.messages} Flower messages, {router.stats.bytes_out:,} B to gateways, "
            f"{router.stats.bytes_in:,} B back")
        return res
    finally:
        router.close()


class ExactCheckingAggregator(SecureAggregator):
    """TEST IMAGES ONLY (``check-exact``): after each secure round, the unmasked sum is compared
    with the plain sum of the survivors' encodings (SA_ENCODED, fetched by the gateways right
    after MASKED_INPUT); the round's report gains ``exact`` = {equal, survivors, words}."""

    batch: Any = None

    def aggregate_secure(self, round_: int, n_params: int, members: Any) -> Any:
        import numpy as np

        agg = super().aggregate_secure(round_, n_params, members)
        srv = self.last_server
        if srv is not None and srv.result is not None and self.last_report is not None:
            res = srv.result
            words = [self.batch.encoded.get((srv.round, i)) for i in res.survivors]
            ok = all(w is not None and w.size == res.sum_words.size for w in words)
            plain = (sum(w.astype(np.uint64) for w in words if w is not None) % (1 << 32)).astype(np.uint32) \
                if ok else None
            self.last_report["exact"] = {"equal": bool(ok and np.array_equal(plain, res.sum_words)),
                                         "survivors": len(res.survivors), "words": int(res.sum_words.size)}
        return agg


__all__ = ["ExactCheckingAggregator", "app", "main", "run_flower"]
