"""SecAgg+ on 5 emulated boards (QEMU mps2-an386, Cortex-M4F): each board
trains one round on its private shard, then the host runs the four SecAgg+
stages over the serial link against the boards' C client (Monocypher on the
M4, randomness from the board's tfd_port_random); one board loses power
before sending its masked input and another right after sending it (before
UNMASK); then a round with fewer live boards than the threshold aborts
without revealing anything.

Exactness: the images are TEST images (``BuildOptions.test_images``), whose
SA_ENCODED transfer returns the words a board masked, before masking.  The
securely aggregated sum equals the plain sum of those clipped, encoded
updates of the survivors bit for bit; FedAvg decoded from either is the same
array; and it matches the plain float FedAvg of the f32 updates to the
fixed-point step."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.qemu

if not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")):
    pytest.skip("needs qemu-system-arm and arm-none-eabi-gcc", allow_module_level=True)

from fl_setup import make_digits_setup  # noqa: E402
from tinyfed_host.emulator import start_boards  # noqa: E402
from tinyfed_host.experiment import FlBuild  # noqa: E402
from tinyfed_host.fl_client import ENC_F32, fetch_update, send_params, train  # noqa: E402
from tinyfed_toolchain.facts.train_config import TrainConfig  # noqa: E402
from tinyfed_host.protocol import ClientOptions, DeviceClient  # noqa: E402
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, encoding_scale, weighted_mean  # noqa: E402
from tinyfed_host.secagg.graph import harary_graph  # noqa: E402
from tinyfed_host.secagg.serial import SerialEndpoint  # noqa: E402
from tinyfed_host.secagg.server import SecAggAbort, SecAggServer  # noqa: E402
from qemu_fleet import shut_down  # noqa: E402

BOARD = "mps2-an386"
CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=5, max_samples=40)
N = 5


@pytest.fixture(scope="module")
def build(secagg_test_images: Path) -> FlBuild:
    assert BOARD == "mps2-an386"  # conftest's shared build
    return FlBuild.load(secagg_test_images)


def _connect_and_train(boards, build: FlBuild, params: np.ndarray, devs: list[DeviceClient]):
    """Connect to each board (kept in `devs`, which the caller closes), send it `params` as
    version 1 and train once; yields each board's TRAIN result as it completes."""
    for b in boards:
        dev = DeviceClient.connect(b.url, ClientOptions(timeout=3.0, retries=6))
        dev.hello()
        devs.append(dev)
        send_params(dev, 1, params, build.model_hash, persist=False)
        yield train(dev, 1, CFG, timeout=90)


def test_secagg_round_on_five_boards(build: FlBuild, tmp_path: Path) -> None:
    boards = start_boards(N, BOARD, build.images, log_dir=tmp_path)
    devs: list[DeviceClient] = []
    try:
        params = build.init_params()
        ups = []
        for _ in _connect_and_train(boards, build, params, devs):
            ups.append(fetch_update(devs[-1], 1, encoding=ENC_F32))
        clip = 2.0 * max(float(np.linalg.norm(u.delta())) for u in ups)
        enc = Encoding(clip, choose_fraction_bits(N, clip), max(u.weight for u in ups))
        ids = list(range(1, N + 1))

        encoded: dict[int, np.ndarray] = {}

        class Killing(SerialEndpoint):
            def exchange(self, message: str, payload: bytes) -> bytes:
                if (self.id, message) in ((3, "MASKED_INPUT"), (4, "UNMASK")):
                    # board 3 loses power before its masked input, board 4 right after it
                    boards[self.id - 1].stop()
                    self.dev.options = ClientOptions(timeout=0.5, retries=1)
                reply = super().exchange(message, payload)
                if message == "MASKED_INPUT":  # test image: what it masked, before masking
                    encoded[self.id] = self.encoded(77)
                return reply

        eps = [Killing(i, d, enc) for i, d in zip(ids, devs)]
        srv = SecAggServer(harary_graph(ids, 4, seed=2), 3, 77, params.size + 1)
        res = srv.run(eps)
        assert res.survivors == (1, 2, 4, 5) and res.dropouts()["MASKED_INPUT"] == [3]
        assert res.dropouts()["UNMASK"] == [4]  # its input counts; its self mask is rebuilt from shares
        # the secure sum is the plain sum of the survivors' encoded updates, bit for bit
        assert sorted(encoded) == [1, 2, 4, 5]
        plain_words = sum(encoded[i].astype(np.uint64) for i in res.survivors) % (1 << 32)
        assert res.sum_words.dtype == np.uint32 and np.array_equal(res.sum_words, plain_words.astype(np.uint32))
        assert np.array_equal(weighted_mean(res.sum_words, enc), weighted_mean(plain_words.astype(np.uint32), enc))
        for i in res.survivors:  # each encoding is the clipped, weighted update, stochastically rounded
            u = ups[i - 1]
            assert int(encoded[i][-1]) == u.weight
            v = u.delta().astype(np.float64) * encoding_scale(u.delta(), enc, u.weight)
            signed = encoded[i][:-1].astype(np.int64) - ((encoded[i][:-1] >> 31).astype(np.int64) << 32)
            assert np.all((signed == np.floor(v)) | (signed == np.floor(v) + 1))
        surv = [ups[i - 1] for i in res.survivors]
        wsum = sum(u.weight for u in surv)
        plain = sum(u.weight * u.delta().astype(np.float64) for u in surv) / wsum
        secure = weighted_mean(res.sum_words, enc)
        assert int(res.sum_words[-1]) == wsum
        bound = len(surv) * enc.weight_max / wsum * 2.0 ** -enc.frac_bits
        assert np.max(np.abs(secure - plain)) <= bound < np.max(np.abs(plain)) / 1000
        assert all(v == 4 * params.size + 8 for v in srv.stats["MASKED_INPUT"].received.values())

        # fewer survivors than the threshold: boards 1, 2, 5 remain; 5 loses power before SHARE_KEYS,
        # t = 3 holders cannot answer, the round aborts before any share is asked for
        class Dying(SerialEndpoint):
            def exchange(self, message: str, payload: bytes) -> bytes:
                if (self.id, message) == (5, "SHARE_KEYS"):
                    boards[4].stop()
                    self.dev.options = ClientOptions(timeout=0.5, retries=1)
                return super().exchange(message, payload)

        alive = [1, 2, 5]
        again = SecAggServer(harary_graph(alive, 2, seed=0), 3, 78, params.size + 1)
        with pytest.raises(SecAggAbort, match="no aggregate revealed"):
            again.run([Dying(i, devs[i - 1], enc) for i in alive])
        assert again.result is None and again.share_requests == 0
        assert [u for u, _ in again.stats["SHARE_KEYS"].dropped] == [5]
    finally:
        shut_down(devs, boards)


class _Recording(SerialEndpoint):
    """A board as SecAgg+ client, keeping every (stage, request, reply) it answered."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.seen: list[tuple[str, bytes, bytes]] = []

    def exchange(self, message: str, payload: bytes) -> bytes:
        reply = super().exchange(message, payload)
        self.seen.append((message, payload, reply))
        return reply


def test_malicious_host_is_refused_by_the_boards(build: FlBuild, tmp_path: Path) -> None:
    """Issue 13's attacks against 5 boards (the device C client on the M4, its identity linked
    into the image by the build): a threshold two disjoint holder sets could reach, a neighbour
    outside the fleet manifest, substituted keys, split survivor views, a false dropout claim
    after a masked input, a replayed stage body, re-training the same update -- each refused by
    the boards, nothing of a single update unmasked, a clear error on the host."""
    from tinyfed_host.secagg import messages as M
    from tinyfed_host.secagg import primitives as Pr
    from tinyfed_host.secagg.encoding import n_words
    from tinyfed_host.secagg.identity import bitmap
    from tinyfed_host.secagg.server import SecAggPolicyError
    from tinyfed_host.protocol import DeviceError

    manifest = build.manifest
    assert manifest is not None and manifest.ids == [1, 2, 3, 4, 5]
    boards = start_boards(N, BOARD, build.images, log_dir=tmp_path)
    devs: list[DeviceClient] = []
    try:
        params = build.init_params()
        for b in boards:
            dev = DeviceClient.connect(b.url, ClientOptions(timeout=3.0, retries=6))
            dev.hello()
            ident = dev.request("GET_IDENTITY", expect=("IDENTITY",), nonce=5)
            assert ident["status"] == 0 and bytes(ident["manifest_digest"]) == manifest.digest
            devs.append(dev)
        ids = [int(d.request("GET_IDENTITY", expect=("IDENTITY",), nonce=6)["device_id"]) for d in devs]
        assert ids == [1, 2, 3, 4, 5]  # board k is manifest device k + 1

        def train_all(version: int, p: np.ndarray) -> list:
            out = []
            for d in devs:
                send_params(d, version, p, build.model_hash, persist=False)
                out.append(train(d, version, CFG, timeout=90))
            return out

        ws = train_all(1, params)
        enc = Encoding(10.0, choose_fraction_bits(N, 10.0), max(r.samples for r in ws))
        eps = [_Recording(i, d, enc) for i, d in zip(ids, devs)]
        g = harary_graph(ids, 4, seed=2)
        nw = n_words(params.size)

        # 1. a threshold two disjoint holder sets could both reach: the host's own check, then the boards
        with pytest.raises(SecAggPolicyError, match="not a strict majority"):
            SecAggServer(g, 2, 90, nw)
        # 2. a neighbour that is not in the fleet manifest
        for e in eps:
            with pytest.raises(DeviceError, match="POLICY"):
                e.exchange("ADVERTISE_KEYS", M.AdvertiseRequest(90, e.id, 2, g.neighbours[e.id]).pack())
            with pytest.raises(DeviceError, match="ARG"):
                e.exchange("ADVERTISE_KEYS", M.AdvertiseRequest(91, e.id, 3, (*g.neighbours[e.id][:3], 99)).pack())

        # 3. round 100: board 1 gets a substituted share key of board 3; the other four get split
        # survivor views of board 2 ({3, 4}: "2 dropped", {2, 5}: "2 survived")
        _, host_pk = Pr.keypair(bytes(range(32)))

        class Evil(SecAggServer):
            def _call(self, stage, ep, payload):
                if stage == "SHARE_KEYS" and ep.id == 1:
                    q = M.ShareKeysRequest.unpack(payload)
                    payload = M.ShareKeysRequest(q.round, tuple(k._replace(share_pk=host_pk) if k.id == 3 else k
                                                                for k in q.keys)).pack()
                if stage == "SURVIVORS" and ep.id in (3, 4):
                    r = M.SurvivorsRequest.unpack(payload).round
                    payload = M.SurvivorsRequest(r, bitmap(self.fleet_ids, [3, 4, 5])).pack()
                return super()._call(stage, ep, payload)

            def _signatures_for(self, u, u2, sigs):  # everything it has, whatever view each covers
                return tuple(M.Signature(h, s) for h, s in sorted(sigs.items()) if h != u)

        srv = Evil(g, 3, 100, nw)
        with pytest.raises(SecAggAbort, match="no aggregate revealed"):
            srv.run(eps)
        assert "CRYPTO" in dict(srv.stats["SHARE_KEYS"].dropped)[1]
        assert sorted(u for u, why in srv.stats["UNMASK"].dropped if "POLICY" in why) == [2, 3, 4, 5]
        assert not [m for e in eps for m, _, _ in e.seen if m == "UNMASK"]  # no board revealed a share
        a_survivors = next(p for e in eps for m, p, _ in e.seen if m == "SURVIVORS" and e.id == 2)

        # 4. round 101: a false dropout claim after board 1's masked input (the same update: no board
        # answered UNMASK for it, so re-masking after this abort is allowed -- after a new TRAIN)
        train_all(2, params)

        class FalseDrop(SecAggServer):
            def _call(self, stage, ep, payload):
                if stage == "SURVIVORS":
                    r = M.SurvivorsRequest.unpack(payload).round
                    payload = M.SurvivorsRequest(r, bitmap(self.fleet_ids, [2, 3, 4, 5])).pack()
                return super()._call(stage, ep, payload)

        for e in eps:
            e.seen.clear()
        srv = FalseDrop(g, 3, 101, nw)
        with pytest.raises(SecAggAbort):
            srv.run(eps)
        assert "ARG" in dict(srv.stats["SURVIVORS"].dropped)[1]  # board 1 will not sign its own dropout
        kinds = {e.id: k for e in eps for m, _, rep in e.seen if m == "UNMASK"
                 for o, k, _ in M.UnmaskReply.unpack(rep).shares if o == 1}
        assert kinds and set(kinds.values()) == {M.KIND_S}  # never a b-share of board 1: its input stays masked

        # 5. a stage body of round 100 replayed in round 101: refused, nothing changes
        with pytest.raises(DeviceError, match="PROTO_STATE"):
            eps[1].exchange("SURVIVORS", a_survivors)

        # 6. re-training the same update (same parameters, same seed): boards 2..5 answered UNMASK for
        # it in round 101 -- they refuse to mask it again (POLICY)
        train_all(3, params)
        again = SecAggServer(g, 3, 102, nw)
        with pytest.raises(SecAggAbort, match="no masked input arrived|aborted"):
            again.run(eps)
        refused = dict(again.stats["MASKED_INPUT"].dropped)
        assert all("POLICY" in refused[i] for i in (2, 3, 4, 5))
    finally:
        shut_down(devs, boards)


def test_distributed_dp_on_the_boards(build: FlBuild, tmp_path: Path) -> None:
    """Distributed DP on 5 boards (issue 13): each board adds its discrete Gaussian noise (drawn on
    the M4 from its own RNG) to its encoded update before masking.  A host that tells one board
    another noise than the rest gets its keys refused by every neighbour (the noise is in the
    signed advertisement: nothing masked).  Then an honest round: the unmasked sum equals the sum
    of what the boards masked (SA_ENCODED of the test images) bit for bit, and what they masked
    is their encoded update plus noise of exactly the variance their calibration promises."""
    from tinyfed_host.secagg import dp_device as D
    from tinyfed_host.secagg import dp_distributed as DD

    boards = start_boards(N, BOARD, build.images, log_dir=tmp_path)
    devs: list[DeviceClient] = []
    try:
        params = build.init_params()
        ups = []
        for _ in _connect_and_train(boards, build, params, devs):
            ups.append(fetch_update(devs[-1], 1, encoding=ENC_F32))
        ids = list(range(1, N + 1))
        clip, zm, t, d = 10.0, 1000, 3, params.size
        f = DD.choose_fraction_bits(N, clip, d, zm, t)
        enc = Encoding(clip, f, max(u.weight for u in ups), zm)
        g = harary_graph(ids, 4, seed=2)

        # board 1 is told z = 2, the others z = 1: refused at SHARE_KEYS by everyone, nothing masked
        odd = Encoding(clip, f, enc.weight_max, 2000)
        eps = [SerialEndpoint(i, dv, odd if i == 1 else enc) for i, dv in zip(ids, devs)]
        bad = SecAggServer(g, t, 119, d + 1)
        with pytest.raises(SecAggAbort):
            bad.run(eps)
        assert sorted(u for u, why in bad.stats["SHARE_KEYS"].dropped if "CRYPTO" in why) == ids

        encoded: dict[int, np.ndarray] = {}

        class Keeping(SerialEndpoint):
            def exchange(self, message: str, payload: bytes) -> bytes:
                reply = super().exchange(message, payload)
                if message == "MASKED_INPUT":  # test image: what it masked, before masking
                    encoded[self.id] = self.encoded(120)
                return reply

        srv = SecAggServer(g, t, 120, d + 1)
        res = srv.run([Keeping(i, dv, enc) for i, dv in zip(ids, devs)])
        assert res.survivors == tuple(ids)
        plain = sum(encoded[i].astype(np.uint64) for i in ids) % (1 << 32)
        assert np.array_equal(res.sum_words, plain.astype(np.uint32))
        s2 = D.device_sigma_sq(enc.clip32, f, d, zm, t)
        ys = []
        for i in ids:
            u = ups[i - 1]
            v = u.delta().astype(np.float64) * encoding_scale(u.delta(), enc, u.weight)
            signed = encoded[i][:-1].astype(np.int64) - ((encoded[i][:-1] >> 31).astype(np.int64) << 32)
            ys.append(signed - np.floor(v))  # the noise + the rounding's 0 or 1
            assert int(encoded[i][-1]) == u.weight  # the weight word stays exact
        y = np.concatenate(ys)
        assert np.max(np.abs(y)) <= 16 * (int(np.sqrt(s2)) + 1) + 1
        assert abs(y.var() / s2 - 1) < 5 * np.sqrt(2.0 / y.size)
        assert abs(y.mean()) < 5 * np.sqrt(s2 / y.size) + 1
    finally:
        shut_down(devs, boards)


@pytest.fixture(scope="module")
def policy_build(tmp_path_factory: pytest.TempPathFactory) -> FlBuild:
    """3 release images whose signed manifest requires distributed DP (z >= 1) and a weight floor of 1/2."""
    from tinyfed_toolchain.build import BuildOptions, run_build

    root = tmp_path_factory.mktemp("secagg_policy_images")
    setup = make_digits_setup(root / "setup")
    (root / "m.tflite").write_bytes(setup.tflite)
    run_build(BuildOptions(tflite=root / "m.tflite", dataset="digits", out_dir=root / "b", board=BOARD, devices=3,
                           dp_min_noise_multiplier=1.0, weight_floor=0.5), log=lambda s: None)
    return FlBuild.load(root / "b")


def test_the_boards_enforce_the_manifests_dp_and_weight_floors(policy_build: FlBuild, tmp_path: Path) -> None:
    """Fleet policy signed into the manifest, enforced on the M4 against a malicious host: a round
    with less noise (z = 0.5) or none is refused at ADVERTISE_KEYS (POLICY) by every board; a cohort
    that weights board 1 at 256 x its samples and the others at 1/256 sample is refused at
    MASKED_INPUT (POLICY) by the down-weighted boards, and the round aborts before any share is
    requested; the honest round (z = 1, weights at the floor) completes."""
    from tinyfed_host.protocol import DeviceError
    from tinyfed_host.secagg import dp_distributed as DD
    from tinyfed_host.secagg import messages as M
    from tinyfed_host.secagg.encoding import n_words

    build = policy_build
    assert build.manifest is not None and build.manifest.dp_min_z_milli == 1000
    assert build.manifest.weight_floor == 128
    boards = start_boards(3, BOARD, build.images, log_dir=tmp_path)
    devs: list[DeviceClient] = []
    try:
        params = build.init_params()
        samples = []
        for res in _connect_and_train(boards, build, params, devs):
            samples.append(res.samples)
        ids = [1, 2, 3]
        g = harary_graph(ids, 2, seed=0)
        d, clip = params.size, 10.0
        f = DD.choose_fraction_bits(3, clip, d, 1000, 2)
        wmax = 256 * max(samples)
        for zm in (0, 500):
            enc = Encoding(clip, f, wmax, zm)
            for i, dv in zip(ids, devs):
                ep = SerialEndpoint(i, dv, enc, 256 * samples[i - 1])
                with pytest.raises(DeviceError, match="POLICY"):
                    ep.exchange("ADVERTISE_KEYS", M.AdvertiseRequest(200 + zm, i, 2, g.neighbours[i]).pack())
        enc = Encoding(clip, f, wmax, 1000)
        evil = [SerialEndpoint(1, devs[0], enc, 256 * samples[0])] + \
               [SerialEndpoint(i, devs[i - 1], enc, 1) for i in (2, 3)]
        srv = SecAggServer(g, 2, 300, n_words(d))
        with pytest.raises(SecAggAbort):
            srv.run(evil)
        refused = dict(srv.stats["MASKED_INPUT"].dropped)
        assert sorted(refused) == [2, 3] and all("POLICY" in why for why in refused.values())
        assert srv.share_requests == 0
        for dv in devs:  # board 1 masked its update: fresh updates for the honest round
            send_params(dv, 2, params, build.model_hash, persist=False)
            train(dv, 2, CFG, timeout=90)
        honest = [SerialEndpoint(i, devs[i - 1], enc, 128 * samples[i - 1]) for i in ids]
        res = SecAggServer(g, 2, 301, n_words(d)).run(honest)
        assert res.survivors == (1, 2, 3) and int(res.sum_words[-1]) == 128 * sum(samples)
    finally:
        shut_down(devs, boards)


def test_tinyfed_fleet_with_distributed_dp_on_policy_boards(policy_build: FlBuild, tmp_path: Path) -> None:
    """`tinyfed fleet --dp distributed` on 3 boards whose manifest requires z >= 1: two secure rounds,
    the report's dp names the mechanism, z, delta and epsilon; asking for central DP on the same
    boards is refused up front with one line (the boards would refuse it anyway)."""
    import json
    import subprocess
    import sys

    out = policy_build.out_dir
    boards = start_boards(3, BOARD, policy_build.images, log_dir=tmp_path / "qemu")
    base = [sys.executable, "-m", "tinyfed_host.cli", "fleet", "--build", str(out), "--rounds", "2", "--epochs", "1",
            "--max-samples", "40", "--no-centralised", "--no-persist", "--clip", "10",
            *[a for b in boards for a in ("--port", b.url)]]
    try:
        rep = tmp_path / "r.json"
        p = subprocess.run([*base, "--dp", "distributed", "--dp-noise-multiplier", "1", "--dp-delta", "1e-5",
                            "--report", str(rep)], capture_output=True, text=True, timeout=400)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        r = json.loads(rep.read_text())
        assert all(x["completed"] and x["secure"]["dp"]["mechanism"] == "distributed" for x in r["rounds"][1:])
        dp = r["dp"]
        assert (dp["mechanism"], dp["noise_multiplier"], dp["delta"], dp["rounds"]) == ("distributed", 1.0, 1e-5, 2)
        assert dp["epsilon"] > 0
        q = subprocess.run([*base, "--dp", "central", "--dp-noise-multiplier", "1"], capture_output=True, text=True,
                           timeout=400)
        assert q.returncode != 0 and "requires distributed DP with a noise multiplier >= 1" in q.stdout + q.stderr
        assert "Traceback" not in q.stdout + q.stderr
    finally:
        for b in boards:
            b.stop()
