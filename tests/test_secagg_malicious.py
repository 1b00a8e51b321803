"""SecAgg+ against a host that deviates from the protocol (issue 13), with the devices'
C client (firmware/src/secagg/protocol.c behind a pipe, firmware/native/secagg_client_host.c):
every attack below is refused by the devices, nothing is unmasked, and the host gets a clear
error.  The same attacks against QEMU boards: tests/test_secagg_qemu.py.

The host here is SecAggServer with one stage rewritten (what a malicious host can do: it
relays every message); the devices only have their identity (a fleet manifest signed by
the user's fleet key) and the protocol.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinyfed_host.secagg import messages as M
from tinyfed_host.secagg.c_client import CClientEndpoint, DeviceRefused, build_native_client
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, n_words
from tinyfed_host.secagg.graph import harary_graph
from tinyfed_host.secagg.identity import bitmap, ephemeral_fleet, identities
from tinyfed_host.secagg.server import SecAggAbort, SecAggPolicyError, SecAggServer

from secagg_fleet import identity

P = 24  # parameters
IDS = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def exe():
    return build_native_client()


def _clients(exe, ids=IDS, idents=None, seed=0):
    rng = np.random.default_rng(seed)
    enc = Encoding(1.0, choose_fraction_bits(len(ids), 1.0), 64)
    eps = [CClientEndpoint(idents[i] if idents else identity(i, ids), enc,
                           rng.normal(0, 0.05, P).astype(np.float32), 10 + i, exe=exe) for i in ids]
    return eps, enc


def _close(eps) -> None:
    for e in eps:
        e.close()


def _refusals(srv: SecAggServer, stage: str) -> dict[int, str]:
    return dict(srv.stats[stage].dropped)


def _shares_of(srv_eps, owner: int) -> dict[int, int]:
    """Which kind of share of ``owner`` each device revealed (holder -> KIND), from the replies seen."""
    out = {}
    for e in srv_eps:
        for msg, _, rep in e.seen:
            if msg == "UNMASK":
                for o, kind, _ in M.UnmaskReply.unpack(rep).shares:
                    if o == owner:
                        out[e.id] = kind
    return out


def test_a_threshold_two_disjoint_holder_sets_could_reach_is_refused(exe) -> None:
    """Issue 13's first attack: k = 4, t = 2 lets two disjoint pairs of holders give both kinds of
    shares of one device.  The host refuses to send it, and the devices refuse it if sent."""
    g = harary_graph(IDS, 4, seed=0)
    with pytest.raises(SecAggPolicyError, match="not a strict majority"):
        SecAggServer(g, 2, 1, n_words(P))
    eps, _ = _clients(exe)
    try:
        for e in eps:
            with pytest.raises(DeviceRefused, match="TFD_ERR_POLICY"):
                e.exchange("ADVERTISE_KEYS", M.AdvertiseRequest(1, e.id, 2, g.neighbours[e.id]).pack())
            assert e.stage() == 0  # nothing started
    finally:
        _close(eps)


def test_split_survivor_views_reveal_nothing_of_the_victim(exe) -> None:
    """The host tells holders {2, 3} that device 1 dropped and {1, 4, 5} that it survived (each
    set valid on its own), hoping for t s-shares and t b-shares of 1.  Each device signs the view
    it got; UNMASK needs t holders of 1 to have signed the SAME view: devices 2 and 3 refuse,
    so no s-share of 1 exists and its masked input stays masked."""

    class Split(SecAggServer):
        def _call(self, stage, ep, payload):
            if stage == "SURVIVORS" and ep.id in (2, 3):
                r = M.SurvivorsRequest.unpack(payload).round
                payload = M.SurvivorsRequest(r, bitmap(self.fleet_ids, [2, 3, 4, 5])).pack()
            return super()._call(stage, ep, payload)

        def _call_all(self, stage, calls):
            return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}

        def _signatures_for(self, u, u2, sigs):  # every signature it has, whatever view it covers
            return tuple(M.Signature(h, sig) for h, sig in sorted(sigs.items()) if h != u)

    eps, _ = _clients(exe)
    try:
        srv = Split(harary_graph(IDS, 4, seed=0), 3, 7, n_words(P))
        res = srv.run(eps)  # the majority view's sum (1 survived): an aggregate, nothing more
        refused = _refusals(srv, "UNMASK")
        assert set(refused) == {2, 3} and all("TFD_ERR_POLICY" in why for why in refused.values())
        kinds = _shares_of(eps, 1)
        assert set(kinds) == {1, 4, 5} and set(kinds.values()) == {M.KIND_B}
        # no s-share of device 1 anywhere: its pairwise masks stay on its masked input
        assert res.survivors == tuple(IDS)
        assert np.array_equal(res.sum_words, sum(e.encoded().astype(np.uint64) for e in eps) % (1 << 32))
        assert [e.stage() for e in eps] == [5, 0, 0, 5, 5]  # refused devices wiped (IDLE), the others DONE
    finally:
        _close(eps)


def test_substituted_keys_are_refused(exe) -> None:
    """The host swaps device 3's advertised share key for its own (man in the middle on the share
    encryption): device 1 checks 3's signature against the manifest and refuses (CRYPTO)."""
    from tinyfed_host.secagg import primitives as Pr

    _, host_pk = Pr.keypair(bytes(range(32)))

    class MitM(SecAggServer):
        def _call(self, stage, ep, payload):
            if stage == "SHARE_KEYS" and ep.id == 1:
                q = M.ShareKeysRequest.unpack(payload)
                keys = tuple(k._replace(share_pk=host_pk) if k.id == 3 else k for k in q.keys)
                payload = M.ShareKeysRequest(q.round, keys).pack()
            return super()._call(stage, ep, payload)

        def _call_all(self, stage, calls):
            return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}

    eps, _ = _clients(exe)
    try:
        srv = MitM(harary_graph(IDS, 4, seed=0), 3, 8, n_words(P))
        res = srv.run(eps)  # the others go on without device 1
        assert "TFD_ERR_CRYPTO" in _refusals(srv, "SHARE_KEYS")[1]
        assert eps[0].stage() == 0 and 1 not in res.survivors
    finally:
        _close(eps)


def test_replayed_messages_of_another_round_are_refused(exe) -> None:
    """Round 20 runs honestly; in round 21 the host replays round 20's signed advertisement of
    device 3 to device 1 (keys whose secrets the host might have learnt), and round 20's
    survivor-set signatures in UNMASK.  Both are bound to their round: refused / not counted."""
    eps, _ = _clients(exe)
    try:
        g = harary_graph(IDS, 4, seed=0)
        first = SecAggServer(g, 3, 20, n_words(P))
        first.run(eps)
        old_ads = {e.id: M.AdvertiseReply.unpack(next(rep for m, _, rep in e.seen if m == "ADVERTISE_KEYS"))
                   for e in eps}

        class Replay(SecAggServer):
            def _call(self, stage, ep, payload):
                if stage == "SHARE_KEYS" and ep.id == 1:
                    q = M.ShareKeysRequest.unpack(payload)
                    a = old_ads[3]
                    keys = tuple(k._replace(share_pk=a.share_pk, mask_pk=a.mask_pk, sig=a.sig) if k.id == 3 else k
                                 for k in q.keys)
                    payload = M.ShareKeysRequest(q.round, keys).pack()
                return super()._call(stage, ep, payload)

            def _call_all(self, stage, calls):
                return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}

        for e in eps:
            e.seen.clear()
        srv = Replay(g, 3, 21, n_words(P))
        srv.run(eps)
        assert "TFD_ERR_CRYPTO" in _refusals(srv, "SHARE_KEYS")[1]
        # a stage message of a finished round: refused, nothing changes
        with pytest.raises(DeviceRefused, match="TFD_ERR_PROTO_STATE"):
            eps[1].call("UNMASK", M.UnmaskRequest(20, ()).pack())

        # round 22: every UNMASK carries round 21's survivor signatures instead of this round's
        old_sigs = {e.id: M.SurvivorsReply.unpack(rep).sig for e in eps for m, _, rep in e.seen if m == "SURVIVORS"}

        class OldSigs(SecAggServer):
            def _call(self, stage, ep, payload):
                if stage == "UNMASK":
                    q = M.UnmaskRequest.unpack(payload)
                    payload = M.UnmaskRequest(q.round, tuple(s._replace(sig=old_sigs.get(s.signer, s.sig))
                                                             for s in q.sigs)).pack()
                return super()._call(stage, ep, payload)

            def _call_all(self, stage, calls):
                return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}

        srv = OldSigs(g, 3, 22, n_words(P))
        with pytest.raises(SecAggAbort):
            srv.run(eps)
        assert all("TFD_ERR_POLICY" in why for why in _refusals(srv, "UNMASK").values())
        assert srv.result is None
    finally:
        _close(eps)


def test_a_device_outside_the_manifest_is_refused(exe) -> None:
    """Devices 1..4 are the fleet; the host adds device 9 (provisioned in a fleet of its own
    making) as a neighbour: the devices refuse a neighbour their manifest does not list, and
    its keys, signed by a key the manifest does not hold."""
    fleet = ephemeral_fleet([1, 2, 3, 4])
    rogue = identities(ephemeral_fleet([1, 2, 3, 4, 9]))[9]
    who = identities(fleet)
    idents = {**who, 9: rogue}
    eps, _ = _clients(exe, ids=[1, 2, 3, 4, 9], idents=idents)
    try:
        g = harary_graph([1, 2, 3, 4, 9], 4, seed=0)
        # the host's own check first (the manifest does not list 9)
        with pytest.raises(SecAggPolicyError, match="not in the fleet manifest"):
            SecAggServer(g, 3, 30, n_words(P), fleet_ids=fleet.manifest.ids)
        # a host that sends it anyway: every fleet device refuses the neighbourhood
        for e in eps[:4]:
            with pytest.raises(DeviceRefused, match="TFD_ERR_ARG"):
                e.exchange("ADVERTISE_KEYS", M.AdvertiseRequest(30, e.id, 3, g.neighbours[e.id]).pack())
            assert e.stage() == 0
    finally:
        _close(eps)


def test_false_dropout_claim_after_masked_input_unmasks_nothing(exe) -> None:
    """Device 1 sent its masked input; the host then claims it dropped.  Told so itself, device 1
    refuses to sign (its input is in the sum).  The others, told consistently, reveal 1's
    s-shares -- but no one reveals a b-share of 1, so its self mask stays on: nothing of 1's
    update can be unmasked (the host's attempt to remove its masks fails)."""
    from tinyfed_host.secagg import primitives as Pr
    from tinyfed_host.secagg.shamir import combine

    class FalseDrop(SecAggServer):
        def _call(self, stage, ep, payload):
            if stage == "SURVIVORS":
                r = M.SurvivorsRequest.unpack(payload).round
                payload = M.SurvivorsRequest(r, bitmap(self.fleet_ids, [2, 3, 4, 5])).pack()
            return super()._call(stage, ep, payload)

        def _call_all(self, stage, calls):
            return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}

    eps, enc = _clients(exe)
    try:
        srv = FalseDrop(harary_graph(IDS, 4, seed=0), 3, 40, n_words(P))
        with pytest.raises(SecAggAbort):  # the server would need 1's b to remove its self mask
            srv.run(eps)
        assert "TFD_ERR_ARG" in _refusals(srv, "SURVIVORS")[1]  # device 1 refuses to sign
        kinds = _shares_of(eps, 1)
        assert kinds and set(kinds.values()) == {M.KIND_S}  # s-shares only: b_1 never revealed
        # everything the host holds about device 1: its masked input and t s-shares -> not its update
        y1 = np.frombuffer(M.MaskedInputReply.unpack(next(rep for m, _, rep in eps[0].seen
                                                          if m == "MASKED_INPUT")).words, "<u4")
        plain1 = eps[0].encoded()
        assert not np.array_equal(y1, plain1)
        s_shares = {e.id: next(s for o, k, s in M.UnmaskReply.unpack(rep).shares if o == 1)
                    for e in eps for m, _, rep in e.seen if m == "UNMASK"}
        assert len(s_shares) >= 3
        g = harary_graph(IDS, 4, seed=0)
        holders = sorted(s_shares)[:3]
        s1 = combine([g.holder_x(1, h) for h in holders], [s_shares[h] for h in holders])
        ad1 = M.AdvertiseReply.unpack(next(rep for m, _, rep in eps[0].seen if m == "ADVERTISE_KEYS"))
        assert Pr.public_key(s1) == ad1.mask_pk  # the host does get s_1 ...
        # ... and removing 1's pairwise masks still leaves PRG(b_1): uniform, not 1's encoding
        rest = y1.astype(np.uint32).copy()
        ads = {e.id: M.AdvertiseReply.unpack(next(rep for m, _, rep in e.seen if m == "ADVERTISE_KEYS"))
               for e in eps}
        for v in g.neighbours[1]:
            words = Pr.prg(Pr.pair_mask_key(s1, ad1.mask_pk, ads[v].mask_pk, 40), n_words(P))
            rest = rest - words if Pr.pair_sign(1, v) > 0 else rest + words
        assert not np.array_equal(rest.astype(np.uint32), plain1)
        assert np.mean(rest.astype(np.uint32) == plain1) < 0.01
    finally:
        _close(eps)


def test_an_asymmetric_graph_is_refused(exe) -> None:
    """The host gives device 1 a neighbourhood with 3 in it but gives 3 one without 1: 3's signed
    neighbourhood does not list 1, so device 1 refuses it (a graph it cannot have been given
    honestly)."""
    eps, _ = _clients(exe, ids=list(range(1, 8)))
    try:
        ring = harary_graph(list(range(1, 8)), 4, seed=0)

        class Asym(SecAggServer):
            def _call(self, stage, ep, payload):
                if stage == "SHARE_KEYS" and ep.id == 1:
                    q = M.ShareKeysRequest.unpack(payload)
                    if 3 not in [k.id for k in q.keys]:
                        return super()._call(stage, ep, payload)
                    # 3's record claiming a (canonical) neighbourhood without 1
                    def without_1(k):
                        nb = [v for v in k.nb[:k.n_nb] if v != 1]
                        return k._replace(n_nb=len(nb), nb=nb + [0] * (len(k.nb) - len(nb)))
                    keys = tuple(without_1(k) if k.id == 3 else k for k in q.keys)
                    payload = M.ShareKeysRequest(q.round, keys).pack()
                return super()._call(stage, ep, payload)

            def _call_all(self, stage, calls):
                return {ep.id: self._call(stage, ep, payload) for ep, payload in calls}

        nb1 = ring.neighbours[1]
        if 3 not in nb1:
            pytest.skip("3 is not a neighbour of 1 in this ring")
        srv = Asym(ring, 3, 50, n_words(P))
        srv.run(eps)
        assert "TFD_ERR_ARG" in _refusals(srv, "SHARE_KEYS")[1]
    finally:
        _close(eps)
