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
from tinyfed_host.fl_client import ENC_F32, TrainConfig, fetch_update, send_params, train  # noqa: E402
from tinyfed_host.protocol import ClientOptions, DeviceClient  # noqa: E402
from tinyfed_host.secagg.encoding import Encoding, choose_fraction_bits, encoding_scale, weighted_mean  # noqa: E402
from tinyfed_host.secagg.graph import harary_graph  # noqa: E402
from tinyfed_host.secagg.serial import SerialEndpoint  # noqa: E402
from tinyfed_host.secagg.server import SecAggAbort, SecAggServer  # noqa: E402

BOARD = "mps2-an386"
CFG = TrainConfig(lr=0.02, momentum=0.9, epochs=1, batch=8, seed=5, max_samples=40)
N = 5


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> FlBuild:
    from tinyfed_toolchain.build import BuildOptions, run_build

    root = tmp_path_factory.mktemp("secagg_qemu")
    setup = make_digits_setup(root / "setup")
    (root / "m.tflite").write_bytes(setup.tflite)
    run_build(BuildOptions(tflite=root / "m.tflite", dataset="digits", out_dir=root / "b", board=BOARD, devices=N,
                           test_images=True),
              log=lambda s: None)
    return FlBuild.load(root / "b")


def test_secagg_round_on_five_boards(build: FlBuild, tmp_path: Path) -> None:
    boards = start_boards(N, BOARD, build.images, log_dir=tmp_path)
    devs: list[DeviceClient] = []
    try:
        params = build.init_params()
        ups = []
        for b in boards:
            dev = DeviceClient.connect(b.url, ClientOptions(timeout=3.0, retries=6))
            dev.hello()
            devs.append(dev)
            send_params(dev, 1, params, build.model_hash, persist=False)
            train(dev, 1, CFG, timeout=90)
            ups.append(fetch_update(dev, 1, encoding=ENC_F32))
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
        for d in devs:
            try:
                d.close()
            except OSError:
                pass
        for b in boards:
            b.stop()
