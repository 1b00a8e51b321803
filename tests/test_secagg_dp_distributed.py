"""Distributed DP in SecAgg+ rounds (issue 13): each device adds its discrete Gaussian noise
(firmware/src/secagg/dp_noise.c) to its encoded update before masking, the host only unmasks
the noised sum (host/secagg/dp_distributed.py accounts for it).

With the devices' C client (host-compiled, firmware/native/secagg_client_host.c):
* the noise is really in the unmasked sum, with the variance the device calibration promises
  (statistics over d coordinates, fixed parameters; no timing), and absent without DP;
* a malicious host cannot switch it off or turn it down: a device refuses a round whose noise
  is below its manifest's floor (POLICY, nothing changes), and a device told another noise
  than its neighbours has its keys refused by them (the noise is in the signed advertisement);
* the aggregator's report and accounting (epsilon, checkpoint state), and its up-front refusal.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tinyfed_host.secagg import dp_distributed as DD
from tinyfed_host.secagg import dp_device as D
from tinyfed_host.secagg import encoding as E
from tinyfed_host.secagg.aggregator import SecureAggregator, SecureOptions
from tinyfed_host.secagg.c_client import CClientEndpoint, build_native_client
from tinyfed_host.secagg.client import PolicyRefused, SecAggClient
from tinyfed_host.secagg.graph import harary_graph
from tinyfed_host.secagg.identity import ephemeral_fleet, identities
from tinyfed_host.secagg.server import SecAggAbort, SecAggPolicyError, SecAggServer
from tinyfed_host.secagg.simulate import LocalEndpoint
from tinyfed_toolchain.facts.errors import OptionsError

IDS = [1, 2, 3, 4, 5]
K, T = 4, 3
CLIP = 1.0


@pytest.fixture(scope="module")
def exe():
    return build_native_client()


def _updates(d: int, n: int = 5, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.5 / math.sqrt(d), d).astype(np.float32) for _ in range(n)]


def _run(exe, fleet, d: int, zm_of: dict[int, int], seed: int = 0):
    """One round over C clients; zm_of: the noise multiplier x 1000 the host tells each device."""
    who = identities(fleet)
    xs = _updates(d, len(IDS), seed)
    ws = [10 + i for i in IDS]
    f = DD.choose_fraction_bits(len(IDS), CLIP, d, max(max(zm_of.values()), 1), T)
    encs = {i: E.Encoding(CLIP, f, 64, zm_of[i]) for i in IDS}
    eps = [CClientEndpoint(who[i], encs[i], x, w, exe=exe) for i, x, w in zip(IDS, xs, ws)]
    srv = SecAggServer(harary_graph(IDS, K, seed=0), T, 77, E.n_words(d), fleet_ids=fleet.manifest.ids)
    return srv, eps, xs, ws, encs


def _close(eps) -> None:
    for e in eps:
        e.close()


def _noise(srv: SecAggServer, xs, ws, enc: E.Encoding) -> np.ndarray:
    """S - sum_u g_u 2^f x_u: the devices' noise (+ at most one unit of rounding per device)."""
    d = xs[0].size
    s = srv.result.sum_words[:d].view(np.int32).astype(np.float64)
    v = sum(E.encoding_scale(x, enc, w) * x.astype(np.float64) for x, w in zip(xs, ws))
    return s - v


def test_the_noise_is_in_the_unmasked_sum_with_the_promised_variance(exe) -> None:
    d, zm = 3000, 1000
    fleet = ephemeral_fleet(IDS)
    srv, eps, xs, ws, encs = _run(exe, fleet, d, {i: zm for i in IDS})
    try:
        srv.run(eps)
    finally:
        _close(eps)
    enc = encs[1]
    s2 = D.device_sigma_sq(enc.clip32, enc.frac_bits, d, zm, T)
    delta = D.sensitivity(enc.clip32, enc.frac_bits, d)
    assert s2 * (T - 1) >= (zm / 1000 * delta) ** 2  # t - 1 devices' noise carries z
    y = _noise(srv, xs, ws, enc)
    var = len(IDS) * s2
    assert abs(y.mean()) < 5 * math.sqrt(var / d)
    assert abs(y.var() / var - 1) < 5 * math.sqrt(2.0 / d)
    # the same round without DP: only the rounding remains (the statistic can fail)
    srv0, eps0, xs0, ws0, encs0 = _run(exe, fleet, d, {i: 0 for i in IDS})
    try:
        srv0.run(eps0)
    finally:
        _close(eps0)
    y0 = _noise(srv0, xs0, ws0, encs0[1])
    assert np.max(np.abs(y0)) <= len(IDS) + 1e-6


def test_a_host_below_the_fleet_floor_is_refused_and_nothing_changes(exe) -> None:
    """Manifest floor z >= 1: a host that asks for 0.5 (or none) gets POLICY from every device,
    which stays idle; the host reference client refuses the same; at the floor the round runs."""
    fleet = ephemeral_fleet(IDS, dp_min_noise_multiplier=1.0)
    for zm in (0, 500, 999):
        srv, eps, *_ = _run(exe, fleet, 50, {i: zm for i in IDS})
        try:
            with pytest.raises(SecAggAbort):
                srv.run(eps)
            refused = dict(srv.stats["ADVERTISE_KEYS"].dropped)
            assert sorted(refused) == IDS and all("TFD_ERR_POLICY" in why for why in refused.values())
            assert all(e.stage() == 0 for e in eps)
        finally:
            _close(eps)
    who = identities(fleet)
    py = SecAggClient(who[1], E.Encoding(CLIP, 16, 64, 500))
    from tinyfed_host.secagg import messages as M
    with pytest.raises(PolicyRefused, match="below the fleet's floor"):
        py.advertise_keys(M.AdvertiseRequest(5, 1, T, (2, 3, 4, 5)).pack())
    srv, eps, *_ = _run(exe, fleet, 50, {i: 1000 for i in IDS})
    try:
        assert sorted(srv.run(eps).survivors) == IDS
    finally:
        _close(eps)


def test_a_device_told_another_noise_is_refused_by_its_neighbours(exe) -> None:
    """The host tells device 1 z = 2 and the others z = 1 (both above the floor): the noise is in
    every signed advertisement, so device 1's neighbours refuse its keys and it refuses theirs
    (k = 4: everyone is everyone's neighbour, so every device abandons the round: nothing is
    masked, nothing unmasked)."""
    fleet = ephemeral_fleet(IDS)
    zm = {i: 1000 for i in IDS}
    zm[1] = 2000
    srv, eps, *_ = _run(exe, fleet, 50, zm)
    try:
        with pytest.raises(SecAggAbort):
            srv.run(eps)
        refused = dict(srv.stats["SHARE_KEYS"].dropped)
        assert sorted(refused) == IDS and all("TFD_ERR_CRYPTO" in why for why in refused.values())
        assert all(e.stage() == 0 for e in eps) and all(m != "MASKED_INPUT" for e in eps for m, _, _ in e.seen)
    finally:
        _close(eps)


# ---------------------------------------------------------------------------- the aggregator


class _InProcess:
    """A participant whose SecAgg+ endpoint is the host reference client (same noise as the device)."""

    def __init__(self, name: str, update: np.ndarray, weight: int, ident: Any) -> None:
        self.name, self.update, self.weight, self.ident = name, update, weight, ident
        self.manifest = ident.manifest
        self.info = SimpleNamespace(identity=SimpleNamespace(status=0, device_id=ident.device_id,
                                                             manifest_digest=ident.manifest.digest))

    def secagg_endpoint(self, client_id: int, enc: E.Encoding) -> LocalEndpoint:
        c = SecAggClient(self.ident, enc)
        c.set_update(self.update, self.weight)
        return LocalEndpoint(c)


def _members(d: int, floor: float = 0.0) -> list[tuple[int, _InProcess, int]]:
    ids = [1, 2, 3]
    who = identities(ephemeral_fleet(ids, dp_min_noise_multiplier=floor))
    xs = _updates(d, 3, seed=4)
    return [(i, _InProcess(f"p{i}", xs[i - 1], 20 + i, who[i]), 20 + i) for i in ids]


def test_aggregator_reports_and_accounts_distributed_dp() -> None:
    d, z = 200, 0.8
    opt = SecureOptions(clip=CLIP, seed=3, dp="distributed", dp_noise_multiplier=z, dp_delta=1e-5)
    agg = SecureAggregator(opt, log=lambda s: None)
    for r in (1, 2):
        agg.aggregate_secure(r, d, _members(d))
    rep = agg.last_report
    info = rep["dp"]
    assert (info["mechanism"], info["noise_multiplier"], info["delta"]) == ("distributed", z, 1e-5)
    assert info["rounds"] == 2 and info["z_milli"] == 800 and info["threshold"] == 2
    assert info["noise_multiplier_effective"] >= z
    assert info["epsilon"] == rep["epsilon"] == pytest.approx(DD.epsilon(agg.dp_z_effs, 1e-5))
    assert info["epsilon"] <= DD.epsilon([z, z], 1e-5) and info["truncation_delta"] < 1e-40
    # checkpoint state keeps the accounting
    again = SecureAggregator(opt, log=lambda s: None)
    again.load_state(agg.state_dict())
    assert again.dp_summary() == agg.dp_summary()
    # a third round moves epsilon on
    agg.aggregate_secure(3, d, _members(d))
    assert agg.dp_summary()["epsilon"] > info["epsilon"]


def test_aggregator_refuses_up_front() -> None:
    """Central DP (or a lower z) on a fleet whose manifest requires distributed noise: one clear line,
    nothing sent; --dp distributed without a noise multiplier is an options error."""
    for opt in (SecureOptions(clip=CLIP, dp="central", dp_noise_multiplier=1.0),
                SecureOptions(clip=CLIP, dp="distributed", dp_noise_multiplier=0.5)):
        with pytest.raises(SecAggPolicyError, match="requires distributed DP with a noise multiplier >= 1"):
            SecureAggregator(opt, log=lambda s: None).aggregate_secure(1, 50, _members(50, floor=1.0))
    with pytest.raises(OptionsError, match="needs --dp-noise-multiplier > 0"):
        SecureOptions(dp="distributed").check()
    SecureOptions(dp="distributed", dp_noise_multiplier=1.0).check()


def test_every_path_to_a_device_carries_the_noise_multiplier() -> None:
    """The advertised noise reaches the device on every host path: serial/in-process
    (ADVERTISE_KEYS field), the Flower relay (SECAGG args -> the gateway's Encoding), the C client
    harness (--dpz) -- a path that dropped it would leave the devices silent while the host
    accounts epsilon."""
    from tinyfed_host.flower.participant import FlowerSecAggEndpoint
    from tinyfed_toolchain.facts.wire_table import WIRE

    assert "dp_z_milli" in [f.name for f in WIRE.msg("ADVERTISE_KEYS").fields]
    enc = E.Encoding(CLIP, 16, 64, 1234)
    ep = FlowerSecAggEndpoint(3, SimpleNamespace(), enc, SimpleNamespace(check_exact=False))
    assert ep.args("ADVERTISE_KEYS")["dp_z_milli"] == 1234


class _Silent(_InProcess):
    """A device reached on a path that lost the noise field: it runs the round without noise."""

    def secagg_endpoint(self, client_id: int, enc: E.Encoding) -> LocalEndpoint:
        import dataclasses

        return super().secagg_endpoint(client_id, dataclasses.replace(enc, dp_z_milli=0))


def test_a_device_that_did_not_sign_the_rounds_noise_is_dropped_before_sharing() -> None:
    """The host checks every advertisement's signature over the round's noise multiplier (the
    device's manifest key): a device that would add other noise than the host accounts is dropped
    at ADVERTISE_KEYS, so its input never enters an accounted sum."""
    d = 60
    ids = [1, 2, 3, 4]
    who = identities(ephemeral_fleet(ids))
    xs = _updates(d, 4, seed=5)
    members = [(i, (_Silent if i == 2 else _InProcess)(f"p{i}", xs[i - 1], 20 + i, who[i]), 20 + i) for i in ids]
    agg = SecureAggregator(SecureOptions(clip=CLIP, seed=3, dp="distributed", dp_noise_multiplier=1.0),
                           log=lambda s: None)
    a = agg.aggregate_secure(1, d, members)
    assert "p2" not in a.devices and len(a.devices) == 3
    why = dict(agg.last_server.stats["ADVERTISE_KEYS"].dropped)[2]
    assert "not signed over this round's DP noise" in why


def test_noise_too_large_for_the_encoding_is_refused_and_wiped(exe) -> None:
    """A host that asks for noise the encoding has no room for (z = 1000 at f = 24): each device
    refuses MASKED_INPUT (OVERFLOW: a noised word could pass 2^31 - 1) and abandons the round,
    nothing masked leaves it; the host's own choice of f refuses such parameters up front."""
    fleet = ephemeral_fleet(IDS)
    who = identities(fleet)
    d = 40
    enc = E.Encoding(CLIP, 24, 64, 1_000_000)
    eps = [CClientEndpoint(who[i], enc, x, 10, exe=exe) for i, x in zip(IDS, _updates(d))]
    try:
        srv = SecAggServer(harary_graph(IDS, K, seed=0), T, 90, E.n_words(d), fleet_ids=fleet.manifest.ids)
        with pytest.raises(SecAggAbort):
            srv.run(eps)
        refused = dict(srv.stats["MASKED_INPUT"].dropped)
        assert sorted(refused) == IDS and all("OVERFLOW" in why for why in refused.values()), refused
        assert all(e.stage() == 0 for e in eps) and srv.share_requests == 0
    finally:
        _close(eps)
    with pytest.raises(OverflowError):
        DD.device_s2(CLIP, 24, d, 1_000_000, T)
