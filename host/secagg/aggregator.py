"""SecureAggregator: the rounds' aggregator (tinyfed_host.fedavg.Aggregator)
for SecAgg+.  Unlike the plain aggregator it never receives an update: after
the devices trained, the round logic hands it the trained participants
(:meth:`aggregate_secure`), it runs the four SecAgg+ stages through each
participant's endpoint (``Participant.secagg_endpoint``) and returns the
FedAvg mean of the survivors, decoded from the exact sum -- optionally with
central discrete Gaussian noise added to the integer sum (tinyfed_host.secagg.dp
explains the mechanism and its calibration), or with distributed DP: every device
adds its share of discrete Gaussian noise before masking, so the host only ever
unmasks a noised sum (tinyfed_host.secagg.dp_distributed).

Per round it records (``last_report``): dropouts per stage, payload bytes per
device per stage, the masking overhead (masked-input bytes / plain update
bytes) and, with DP, epsilon after this many rounds plus the noise calibration
(``last_report["dp"]``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import OptionsError
from tinyfed_toolchain.facts.wire_table import WIRE
from tinyfed_toolchain.image import eddsa
from tinyfed_toolchain.image.provision import Manifest

from ..fedavg import Aggregate, AggregationError
from ..fl_client import ENC_F32, Update
from . import dp, dp_distributed
from .encoding import Encoding, choose_fraction_bits, decode_sum, n_words
from .identity import adv_digest
from .graph import MIN_NEIGHBOURS, default_degree, default_threshold, harary_graph
from .server import STAGES, Endpoint, SecAggAbort, SecAggPolicyError, SecAggServer


#: the largest neighbourhood a device accepts (wire.def SA_MAX_NEIGHBOURS, the device's
#: TFD_SA_CLIENT_MAX_NEIGHBOURS): the default degree is capped there (fleets above 128 devices
#: need a larger table)
DEVICE_MAX_NEIGHBOURS = WIRE.const("SA_MAX_NEIGHBOURS")


class SecureParticipant(Protocol):
    name: str

    def secagg_endpoint(self, client_id: int, enc: Encoding, weight: int = 0, staleness: int = 0) -> Endpoint: ...


#: DP mechanisms (``--dp``): ``central`` = the host adds the discrete Gaussian noise to the unmasked
#: integer sum (dp.py); ``distributed`` = each device adds its share of the noise before masking, so
#: that even the aggregating host never sees an exact sum (dp_distributed.py).
DP_MECHANISMS = ("central", "distributed")


@dataclass(frozen=True)
class SecureOptions:
    clip: float = 1.0                     # L2 bound C of one update
    neighbours: int | None = None         # degree k (None: default_degree(n))
    threshold: int | None = None          # t (None: default_threshold(k))
    seed: int | None = None               # graph seed (None: fresh per round)
    dp_noise_multiplier: float = 0.0      # z (0: no DP noise)
    dp_delta: float = 1e-5
    fleet_size: int | None = None         # reported participation rate q = survivors / fleet (no amplification)
    dp: str = "central"                   # DP mechanism (DP_MECHANISMS), used when dp_noise_multiplier > 0

    def check(self) -> None:
        """Refuse options no run can honour (one clear line)."""
        if not self.clip > 0 or self.dp_noise_multiplier < 0 or not 0 < self.dp_delta < 1:
            raise OptionsError("secure aggregation needs clip > 0, dp_noise_multiplier >= 0, 0 < dp_delta < 1")
        if self.dp not in DP_MECHANISMS:
            raise OptionsError(f"--dp {self.dp}: not a DP mechanism ({', '.join(DP_MECHANISMS)})")
        if self.dp == "distributed" and not self.dp_noise_multiplier > 0:
            raise OptionsError("--dp distributed needs --dp-noise-multiplier > 0 (the noise the devices add)")
        if self.dp == "distributed":
            try:
                dp_distributed.z_milli(self.dp_noise_multiplier)
            except ValueError as e:
                raise OptionsError(f"--dp-noise-multiplier: {e}") from None


class SecureAggregator:
    """Aggregator interface + :meth:`aggregate_secure` (see the module docstring)."""

    name = "secagg+"
    encoding = ENC_F32  # not used: no plain update is fetched
    interactive = True

    def __init__(self, options: SecureOptions = SecureOptions(), log: Callable[[str], None] = print,
                 noise_bits: dp.RandBits | None = None, manifest: Manifest | None = None) -> None:
        """``noise_bits``: the DP noise's bit source (default: the OS CSPRNG; inject one only in tests);
        ``manifest``: the fleet manifest the devices pin (their identities; survivor bitmaps are over
        it); None: taken from the participants (in-process fleets carry theirs)."""
        self.manifest = manifest
        self.opt = options
        self.log = log
        self.noise_bits: dp.RandBits = noise_bits if noise_bits is not None else dp.SystemRandomBits()
        self._round = -1
        self._n = 0
        self._last_sa_round = 0
        self.rounds_done = 0
        self.dp_z_effs: list[float] = []  # distributed DP: each round's effective noise multiplier
        self.dp_draws = 0                 # distributed DP: noise draws in the revealed sums (truncation delta)
        # several SecAgg+ instances may run at once (concurrent cohorts, each in its own worker
        # thread): round ids and DP accounting under a lock, the last report / server per thread
        self._lock = threading.Lock()
        self._mine = threading.local()

    @property
    def last_report(self) -> dict[str, Any] | None:
        """This thread's last SecAgg+ round report (each concurrent cohort sees its own)."""
        return getattr(self._mine, "report", None)

    @last_report.setter
    def last_report(self, value: dict[str, Any] | None) -> None:
        self._mine.report = value

    @property
    def last_server(self) -> SecAggServer | None:
        """This thread's last SecAgg+ server (its result: the exact sum words)."""
        return getattr(self._mine, "server", None)

    @last_server.setter
    def last_server(self, value: SecAggServer | None) -> None:
        self._mine.server = value

    # -- checkpoint (host/checkpoint.py): DP accounting and round ids survive a host restart ------
    def state_dict(self) -> dict[str, Any]:
        return {"rounds_done": self.rounds_done, "last_sa_round": self._last_sa_round,
                "dp_z_effs": list(self.dp_z_effs), "dp_draws": self.dp_draws}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rounds_done = int(state.get("rounds_done", 0))
        self.dp_z_effs = [float(z) for z in state.get("dp_z_effs", [])]
        self.dp_draws = int(state.get("dp_draws", 0))
        self._last_sa_round = max(self._last_sa_round, int(state.get("last_sa_round", 0)))

    def dp_summary(self) -> dict[str, Any] | None:
        """The run's DP for its report (``dp``): mechanism, noise multiplier z, delta and epsilon after
        the secure aggregations done so far (one Gaussian mechanism each, composed without
        amplification: dp.py); None without DP noise."""
        z = self.opt.dp_noise_multiplier
        if not z > 0:
            return None
        if self.opt.dp == "distributed":
            return dp_distributed.summary(self.dp_z_effs, self.dp_draws, z, self.opt.dp_delta)
        eps = dp.epsilon(z, self.rounds_done, self.opt.dp_delta) if self.rounds_done else 0.0
        return {"mechanism": self.opt.dp, "noise_multiplier": z, "delta": self.opt.dp_delta, "epsilon": eps,
                "rounds": self.rounds_done}

    # -- the Aggregator interface: a secure round takes no plain update ---------------------------
    def begin(self, round_: int, n_params: int) -> None:
        self._round, self._n = round_, n_params

    def add(self, update: Update) -> None:
        raise AggregationError("secure aggregation takes no plain update")

    def finish(self) -> Aggregate:
        raise AggregationError("secure aggregation: use aggregate_secure()")

    # -- the secure round ----------------------------------------------------------------------------
    def _sa_round_id(self) -> int:
        """Strictly increasing across rounds and runs (devices refuse an older SecAgg round)."""
        with self._lock:
            rid = max(self._last_sa_round + 1, int(time.time()))
            self._last_sa_round = rid
        return rid & 0xFFFFFFFF

    def aggregate_secure(self, round_: int, n_params: int,
                         members: Sequence[tuple[int, SecureParticipant, int] | tuple[int, SecureParticipant, int, int]]
                         ) -> Aggregate:
        """members: (client id, participant, its weight as reported by TRAIN_RESULT: the samples it
        trained on, which the device weights its update by), or (client id, participant, public
        weight, staleness): the cohort invitation (ADVERTISE_KEYS) names the weight the device
        weights its update by (a semi-async strategy's staleness factor x samples, in units of
        1/SA_WEIGHT_ONE sample; the device refuses more than SA_WEIGHT_ONE per sample it trained on).
        The mean is W * sum / sum of the weight words."""
        n = len(members)
        if n < MIN_NEIGHBOURS + 1:
            raise SecAggAbort(f"round {round_}: secure aggregation needs >= {MIN_NEIGHBOURS + 1} trained devices "
                              f"(a device refuses fewer than {MIN_NEIGHBOURS} neighbours), have {n}")
        k = self.opt.neighbours or min(default_degree(n), DEVICE_MAX_NEIGHBOURS)
        k = min(k, n - 1)
        if k < n - 1 and k % 2:
            k -= 1
        t = self.opt.threshold or default_threshold(k)
        t = min(t, k + 1)
        wmax = max(m[2] for m in members)
        manifest = self._fleet_manifest(members)
        z = self.opt.dp_noise_multiplier
        distributed = self.opt.dp == "distributed" and z > 0
        zm = dp_distributed.z_milli(z) if distributed else 0
        if zm < manifest.dp_min_z_milli:  # the devices would refuse: say so before asking them
            raise SecAggPolicyError(f"the fleet's manifest requires distributed DP with a noise multiplier >= "
                                    f"{manifest.dp_min_z_milli / 1000:g} (--dp distributed --dp-noise-multiplier "
                                    f"Z); this run asks {'for ' + format(zm / 1000, 'g') if zm else 'none'}")
        if distributed:
            if t < 2:
                raise SecAggPolicyError("distributed DP needs a threshold t >= 2 (the noise of t - 1 others)")
            try:
                f = dp_distributed.choose_fraction_bits(n, self.opt.clip, n_params, zm, t)
            except OverflowError as e:
                raise SecAggPolicyError(f"round {round_}: {e}") from None
            enc = Encoding(self.opt.clip, f, max(1, wmax), zm)
        else:
            enc = Encoding(self.opt.clip, choose_fraction_bits(n, self.opt.clip), max(1, wmax))
        # a device takes part as its manifest identity, whatever the host calls it
        sids = {m[0]: self._device_id(m[1], manifest) for m in members}
        ids = [sids[m[0]] for m in members]
        seed = self.opt.seed if self.opt.seed is None else self.opt.seed + round_
        g = harary_graph(ids, k, seed)
        names = {sids[m[0]]: m[1].name for m in members}
        rid = self._sa_round_id()
        srv = SecAggServer(g, t, rid, n_words(n_params), log=self.log, label=f"round {round_}",
                           check_advert=self._signed_noise_check(manifest, rid, t, g, zm) if distributed else None,
                           names=names, fleet_ids=manifest.ids)
        self.last_server = srv
        eps = [m[1].secagg_endpoint(sids[m[0]], enc, m[2], m[3]) if len(m) > 3
               else m[1].secagg_endpoint(sids[m[0]], enc) for m in members]
        try:
            res = srv.run(eps)
        finally:
            self.last_report = self._report(srv, n_params, names, k, t, enc)
            for e in eps:  # per-round endpoints (virtual devices' client processes) end with the round
                close = getattr(e, "close", None)
                if callable(close):
                    close()
        values, total = decode_sum(res.sum_words, enc)
        if total <= 0:
            raise AggregationError(f"round {round_}: total weight 0")
        dp_info: dict[str, Any] | None = None
        if distributed:  # the devices' noise is in the sum already (dp_distributed.py)
            z_eff = dp_distributed.effective_multiplier(enc.clip32, enc.frac_bits, n_params, zm, t)
            s2 = dp_distributed.device_s2(enc.clip32, enc.frac_bits, n_params, zm, t)
            with self._lock:  # concurrent cohorts: one account
                self.rounds_done += 1
                self.dp_z_effs.append(z_eff)
                self.dp_draws += len(res.survivors) * n_params
                info = self.dp_summary() or {}
            if self.last_report is not None:
                info.update({"z_milli": zm, "device_sigma": math.sqrt(s2), "device_sigma_decoded":
                             math.sqrt(s2) / float(1 << enc.frac_bits), "sum_sigma_decoded":
                             math.sqrt(s2 * len(res.survivors)) / float(1 << enc.frac_bits),
                             "noise_multiplier_effective": z_eff, "threshold": t,
                             "survivors": len(res.survivors), "frac_bits": enc.frac_bits, "dim": n_params,
                             "sampling_rate": min(1.0, len(res.survivors) / float(self.opt.fleet_size or n)),
                             "amplification": "none"})
                self.last_report["epsilon"] = info["epsilon"]
                self.last_report["dp"] = info
            mean = values * (float(enc.weight_max) / float(total))
            return Aggregate(round_, mean, total, len(res.survivors), tuple(names[i] for i in res.survivors))
        if z > 0:  # discrete Gaussian on the integer sum, then decode (dp.py)
            t0 = time.perf_counter()
            cal = dp.calibrate(z, enc, n_params)
            noised = dp.add_noise(res.sum_words, cal, self.noise_bits)
            values = noised.astype(np.float64) / float(1 << enc.frac_bits)
            dp_info = cal.as_dict()
            dp_info["sample_seconds"] = time.perf_counter() - t0
        with self._lock:
            self.rounds_done += 1
            done = self.rounds_done
        if self.last_report is not None and dp_info is not None:
            q = min(1.0, len(res.survivors) / float(self.opt.fleet_size or n))
            eps_now = dp.epsilon(z, done, self.opt.dp_delta)
            self.last_report["epsilon"] = eps_now
            dp_info.update({"delta": self.opt.dp_delta, "sampling_rate": q, "amplification": "none",
                            "rounds": done, "epsilon": eps_now,
                            "accounting": "RDP alpha*rounds/(2 z^2) (CKS20 Thm 14), dp_accounting conversion"})
            self.last_report["dp"] = dp_info
        mean = values * (float(enc.weight_max) / float(total))
        return Aggregate(round_, mean, total, len(res.survivors), tuple(names[i] for i in res.survivors))

    def weight_floor(self, participants: Sequence[Any]) -> int:
        """The fleet's weight floor (signed manifest): the smallest public weight per sample, in
        1/SA_WEIGHT_ONE sample, a device accepts; 0 without a manifest (aggregate_secure then says why)."""
        try:
            return int(self._fleet_manifest([(None, p) for p in participants]).weight_floor)
        except SecAggPolicyError:
            return 0

    @staticmethod
    def _signed_noise_check(manifest: Manifest, rid: int, t: int, g: Any, zm: int) -> Callable[[int, Any], str | None]:
        """Distributed DP: a device's advertisement must be signed (its manifest key) over this round's
        noise multiplier -- else its input would carry other noise than the host accounts (a device
        on a path that lost the field, or another image): it is dropped before anything is shared."""
        def check(u: int, a: Any) -> str | None:
            h = adv_digest(manifest.fleet_id, rid, u, t, g.neighbours[u], a.share_pk, a.mask_pk, zm)
            if eddsa.verify(manifest.public_key(u), h, a.sig):
                return None
            return f"its advertisement is not signed over this round's DP noise (z_milli {zm}): not accounted, dropped"
        return check

    def _fleet_manifest(self, members: Sequence[tuple[Any, ...]]) -> Manifest:
        """The fleet manifest the devices pin: the one in-process participants carry (they were
        provisioned for this run), else the one given (boards: the build's)."""
        m = next((getattr(mb[1], "manifest", None) for mb in members if getattr(mb[1], "manifest", None)), None)
        if m is None:
            m = self.manifest
        if m is None:
            raise SecAggPolicyError("secure aggregation needs the fleet manifest the devices were provisioned "
                                    "with (<build>/fleet/manifest.json): rebuild the images with this tinyfed")
        return m

    @staticmethod
    def _device_id(p: SecureParticipant, manifest: Manifest) -> int:
        """Device p's manifest id, after checking it was provisioned for this fleet."""
        info = getattr(p, "info", None)
        ident = getattr(info, "identity", None) if info is not None else None
        if ident is None or ident.status != 0:
            why = "it answers no GET_IDENTITY" if ident is None else f"identity status {ident.status}"
            raise SecAggPolicyError(f"{p.name}: no usable device identity ({why}): its image was built without "
                                    "identity provisioning, or its record is corrupt; secure aggregation refused")
        if ident.manifest_digest != manifest.digest:
            raise SecAggPolicyError(f"{p.name}: provisioned for another fleet manifest (digest "
                                    f"{ident.manifest_digest.hex()[:16]}..., this run's is {manifest.digest.hex()[:16]}...)")
        return int(ident.device_id)

    @staticmethod
    def _report(srv: SecAggServer, n_params: int, names: dict[int, str], k: int, t: int,
                enc: Encoding) -> dict[str, Any]:
        plain = 4 * n_params
        stages = {s: srv.stats[s].as_dict() for s in STAGES}
        masked = stages["MASKED_INPUT"]["bytes_from_device_mean"]
        return {"secure": True, "round_id": srv.round, "degree": k, "threshold": t, "clip": enc.clip32, "frac_bits": enc.frac_bits,
                "weight_max": enc.weight_max,
                "dropouts": {s: [names[i] for i, _ in srv.stats[s].dropped] for s in STAGES},
                "bytes_per_device": {s: {"to_device": d["bytes_to_device_mean"],
                                         "from_device": d["bytes_from_device_mean"]} for s, d in stages.items()},
                "plain_update_bytes": plain,
                "masking_overhead": (masked / plain) if masked else None,
                "aborted": srv.result is None}


__all__ = ["SecureAggregator", "SecureOptions", "SecureParticipant"]
