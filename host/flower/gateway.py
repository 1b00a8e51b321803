"""``tinyfed gateway``: a long-lived process on the machine the boards are
plugged into (a Raspberry Pi, a PC), joined to a Flower federation.

::

    tinyfed gateway --superlink HOST:PORT --port /dev/ttyACM0 --port /dev/ttyACM1

It owns its serial ports for its whole life: each board is opened once (a
re-open toggles DTR, which resets many boards) and only reconnected after
its link was lost.  Three parts:

* :class:`GatewayBoards` -- the boards and what the relay asks of them
  (:mod:`tinyfed_host.flower.relay`): each board's operations run in order on
  its own thread, the boards in parallel.  A board that vanishes (link lost,
  no answer) fails its operations; the ServerApp counts it as a dropout of
  that step, and it is asked to rejoin (HELLO, reconnecting the port) later.
* the executor of the Flower messages -- by default the gateway runs them
  itself (:mod:`tinyfed_host.flower.executor`, the SuperNode started with
  ``--isolation process``): no process per message.  With ``--isolation
  subprocess`` Flower starts its ClientApp per message as usual, and the
  ClientApp hands the message over on a Unix socket (:class:`RelayServer`,
  in a private 0700 folder; the path goes in the SuperNode's node config).
* :class:`SuperNodeSupervisor` -- the Flower SuperNode this gateway joins the
  federation with (``flower-supernode --superlink HOST:PORT``, TLS or
  ``--insecure``), restarted if it exits, and ended with the gateway (also on
  SIGKILL: the child gets SIGTERM from the kernel when its parent dies, and
  leaves the federation, so the ServerApp hears at once that the gateway's
  boards are gone).  A restarted gateway
  registers a new node; the ServerApp finds its boards again by name
  (``<gateway name>/<port>``) and they rejoin.

What the gateway sees: HELLO information, TRAIN_RESULT numbers and SecAgg+
bodies that are sealed or masked end to end between each board and the
server -- never an update in the clear (secure runs), never a sample.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tinyfed_toolchain.facts.errors import TinyfedError

from .relay import (NODE_NAME_KEY, NODE_SOCKET_KEY, DeviceEntry, Op, OpResult, RelayError, RelayReply, RelayRequest,
                    failure_kind, pack_fields, unpack_fields)

#: first bytes of every frame on the gateway socket
SOCKET_MAGIC = b"TFR1"
_LEN = struct.Struct("<I")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class GatewayError(TinyfedError, RuntimeError):
    """The gateway cannot start or run as asked (one-line message for the CLI)."""


def superlink_address_problem(address: str) -> str | None:
    """Why ``address`` is not a SuperLink's HOST:PORT (None: it is one)."""
    m = re.match(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d+)$", address)
    if m is None:
        return "expected HOST:PORT"
    if not 1 <= int(m.group(2)) <= 65535:
        return f"port {m.group(2)} is not in 1..65535"
    return None


@dataclass(frozen=True)
class GatewayOptions:
    """Every knob of ``tinyfed gateway``, declared once."""

    superlink: str                          # HOST:PORT of the SuperLink's Fleet API
    ports: tuple[str, ...]                  # serial URLs of the boards this gateway owns
    name: str = ""                          # gateway name (default: host name); devices are NAME/PORT
    insecure: bool = False                  # plain HTTP to the SuperLink (tests, trusted networks)
    root_certificates: str | None = None    # CA bundle (PEM) to verify the SuperLink's TLS certificate
    auth_key: str | None = None             # the SuperNode's private key (PEM) for Flower's SuperNode authentication
    timeout: float = 2.0                    # seconds per request attempt on a serial link
    retries: int = 6                        # resends per request on a serial link
    runtime_port: int = 0                   # the SuperNode's local Runtime API port (0: a free one)
    restart_delay: float = 2.0              # seconds before a SuperNode that exited is started again
    isolation: str = "process"              # process: the gateway runs the messages; subprocess: Flower's ClientApp
    supernode: str = "flower-supernode"     # the SuperNode command
    extra_supernode_args: tuple[str, ...] = ()

    def checked(self) -> "GatewayOptions":
        name = self.name or socket.gethostname().split(".")[0] or "gateway"
        name = re.sub(r"[^A-Za-z0-9._-]", "-", name)
        if not NAME_RE.match(name):
            raise GatewayError(f"gateway name {name!r}: use letters, digits, '.', '_' or '-' (at most 63)")
        if not self.ports:
            raise GatewayError("a gateway needs at least one --port")
        if len(set(self.ports)) != len(self.ports):
            raise GatewayError("a --port is given twice")
        why = superlink_address_problem(self.superlink)
        if why:
            raise GatewayError(f"--superlink {self.superlink!r}: {why}")
        if self.insecure and self.root_certificates:
            raise GatewayError("--insecure and --root-certificates contradict")
        for what, path in (("--root-certificates", self.root_certificates), ("--auth-key", self.auth_key)):
            if path and not Path(path).is_file():
                raise GatewayError(f"{what} {path}: no such file")
        if self.auth_key and self.insecure:
            raise GatewayError("--auth-key needs TLS (Flower authenticates SuperNodes over TLS only)")
        if self.isolation not in ("process", "subprocess"):
            raise GatewayError(f"--isolation {self.isolation!r}: process or subprocess")
        if not (self.timeout > 0 and self.retries >= 0):
            raise GatewayError("--timeout must be > 0")
        return dataclasses.replace(self, name=name)


# ---- the boards -----------------------------------------------------------------------------------
Connector = Callable[[str], Any]  # url -> a Participant (open/push_params/train/fetch_update/secagg_endpoint)


def serial_connector(timeout: float, retries: int) -> Connector:
    from ..protocol import ClientOptions
    from ..participant import SerialParticipant

    def make(url: str) -> Any:
        return SerialParticipant(url, ClientOptions(timeout=timeout, retries=retries), name=url)

    return make


def info_fields(info: Any) -> dict[str, Any]:
    """A ParticipantInfo as JSON-able fields (the model hash in hex)."""
    d = dataclasses.asdict(info)
    d["model_hash"] = bytes(info.model_hash).hex()
    ident = getattr(info, "identity", None)  # GET_IDENTITY's answer (bytes in hex), or None
    d["identity"] = ident.as_fields() if ident is not None else None
    return d


@dataclass
class GatewayBoard:
    url: str
    participant: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    online: bool = False
    info: Any = None
    error: str = ""


class GatewayBoards:
    """The boards of one gateway and the relay operations on them."""

    def __init__(self, name: str, urls: Sequence[str], connector: Connector,
                 log: Callable[[str], None] = print, *, own_names: bool = False) -> None:
        """``own_names``: the boards are known by their keys alone, not ``<gateway>/<key>``
        (a simulated node: its one device's name)."""
        self.name = name
        self.log = log
        self.own_names = own_names
        self.boards = {u: GatewayBoard(u, connector(u)) for u in urls}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self.boards)),
                                                           thread_name_prefix="board")

    # -- life cycle ---------------------------------------------------------------------------------
    def open_all(self) -> None:
        """Connect to every board once (in parallel); a board that does not answer is offline
        and retried when the ServerApp next asks for it."""
        def hello(b: GatewayBoard) -> None:
            try:
                self._hello(b)
            except Exception:  # noqa: BLE001 - offline: listed as such, retried later
                pass

        list(self._pool.map(hello, self.boards.values()))

    def _hello(self, b: GatewayBoard) -> Any:
        with b.lock:
            return self._hello_locked(b)

    def _hello_locked(self, b: GatewayBoard) -> Any:
        try:
            b.info = b.participant.open()
        except Exception as e:  # noqa: BLE001 - a board that does not answer is offline, not fatal
            b.online, b.error = False, f"{type(e).__name__}: {e}"
            self._drop_link_if_lost(b, e)
            self.log(f"[gateway] {b.url}: offline ({b.error})")
            raise
        b.online, b.error = True, ""
        return b.info

    @staticmethod
    def _drop_link_if_lost(b: GatewayBoard, e: BaseException) -> None:
        if failure_kind(e) == "lost":
            try:
                b.participant.close()  # reconnect (re-open the port) on the next HELLO
            except OSError:
                pass

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for b in self.boards.values():
            with b.lock:
                try:
                    b.participant.close()
                except OSError:
                    pass

    def inventory(self) -> tuple[DeviceEntry, ...]:
        return tuple(DeviceEntry(b.url, b.online, info_fields(b.info) if b.info is not None else {}, b.error,
                                 b.url if self.own_names else "")
                     for b in self.boards.values())

    # -- a relay request ----------------------------------------------------------------------------
    def handle(self, req: RelayRequest) -> RelayReply:
        t0 = time.monotonic()
        kinds = sorted({op.kind + (f" {op.args['stage']}" if op.kind == "SECAGG" else "") for op in req.ops})
        if req.ops:
            self.log(f"[gateway] request {req.seq}: {'/'.join(kinds)} for "
                     f"{len({op.device for op in req.ops})} board(s)")
        per_board: dict[str, list[tuple[int, Op]]] = {}
        results: list[OpResult | None] = [None] * len(req.ops)
        for i, op in enumerate(req.ops):
            if op.device not in self.boards:
                results[i] = OpResult(op.device, "gateway", f"gateway {self.name} has no board {op.device!r}")
            else:
                per_board.setdefault(op.device, []).append((i, op))
        futures = {self._pool.submit(self._run_board, self.boards[d], ops, req.params): ops
                   for d, ops in per_board.items()}
        for fut, ops in futures.items():
            for (i, _), res in zip(ops, fut.result()):
                results[i] = res
        if req.inventory:
            for b in self.boards.values():  # offline boards get another chance to join
                if not b.online:
                    try:
                        self._hello(b)
                    except Exception:  # noqa: BLE001 - stays offline, listed with its error
                        pass
        done = tuple(r for r in results if r is not None)
        bad = sum(1 for r in done if not r.ok)
        if req.ops:
            self.log(f"[gateway] request {req.seq}: {len(done) - bad} ok, {bad} failed "
                     f"({time.monotonic() - t0:.1f} s)")
        return RelayReply(req.seq, self.name, done, self.inventory() if req.inventory else ())

    def _run_board(self, b: GatewayBoard, ops: list[tuple[int, Op]], params: tuple[bytes, ...]) -> list[OpResult]:
        out: list[OpResult] = []
        with b.lock:
            failed: OpResult | None = None
            for _, op in ops:
                if failed is not None:
                    out.append(OpResult(b.url, failed.failure, f"not run: an earlier {failed.error}",
                                        traffic=self._traffic(b)))
                    continue
                try:
                    fields, data = self._run_op(b, op, params)
                    out.append(OpResult(b.url, "", "", fields, data, self._traffic(b)))
                except Exception as e:  # noqa: BLE001 - every failure goes back as this board's result
                    kind = failure_kind(e)
                    if kind in ("lost", "timeout"):
                        b.online = kind != "lost" and b.online
                    self._drop_link_if_lost(b, e)
                    failed = OpResult(b.url, kind, f"{op.kind} failed: {type(e).__name__}: {e}",
                                      traffic=self._traffic(b))
                    out.append(failed)
        return out

    @staticmethod
    def _traffic(b: GatewayBoard) -> tuple[int, int, int, int]:
        try:
            t = b.participant.traffic()
        except Exception:  # noqa: BLE001
            return (0, 0, 0, 0)
        return (int(t.payload_out), int(t.payload_in), int(t.wire_out), int(t.wire_in))

    def _run_op(self, b: GatewayBoard, op: Op, params: tuple[bytes, ...]) -> tuple[dict[str, Any], bytes]:
        a = op.args
        p = b.participant
        if op.kind == "HELLO":
            return info_fields(self._hello_locked(b)), b""
        if not b.online:
            # never answered since it was lost: reconnect before anything else
            self._hello_locked(b)
        if op.kind == "PARAMS":
            import numpy as np

            from ..fl_client import decode_f32

            k = _int(a, "index")
            if not 0 <= k < len(params) or len(params[k]) % 4:
                raise RelayError(f"PARAMS refers to parameter vector {k} of {len(params)}")
            vec = decode_f32(params[k], len(params[k]) // 4)
            p.push_params(_int(a, "version"), np.asarray(vec), bytes.fromhex(_str(a, "model_hash")),
                          bool(a.get("persist", False)))
            return {}, b""
        if op.kind == "TRAIN":
            from tinyfed_toolchain.facts.train_config import TrainConfig

            cfg = a.get("cfg")
            if not isinstance(cfg, dict):
                raise RelayError("TRAIN needs cfg")
            names = {f.name for f in dataclasses.fields(TrainConfig)}
            tcfg = TrainConfig(**{k: v for k, v in cfg.items() if k in names})
            res = p.train(_int(a, "version"), tcfg, float(a.get("timeout", 300.0)))
            return dataclasses.asdict(res), b""
        if op.kind == "UPDATE":
            u = p.fetch_update(_int(a, "version"), _int(a, "encoding"))
            return {"n_params": u.n_params, "encoding": u.encoding, "weight": u.weight, "norm": u.norm,
                    "clip": u.clip, "round": u.round}, u.payload
        if op.kind == "SECAGG":
            from ..secagg.encoding import Encoding

            enc = Encoding(float(a["clip"]), _int(a, "frac_bits"), _int(a, "weight_max"),
                           _int(a, "dp_z_milli") if "dp_z_milli" in a else 0)
            ep = p.secagg_endpoint(_int(a, "client_id"), enc, int(a.get("weight", 0)), int(a.get("staleness", 0)))
            stage = _str(a, "stage")
            reply = ep.exchange(stage, op.data)
            if stage == "MASKED_INPUT" and a.get("encoded") is True:
                # TEST IMAGES ONLY (--check-exact): the words the board masked, before masking (SA_ENCODED;
                # a release image refuses it, and the board then drops out of the round)
                words = ep.encoded(struct.unpack_from("<I", op.data)[0])
                return {"reply_len": len(reply)}, reply + words.astype("<u4").tobytes()
            return {}, reply
        raise RelayError(f"unknown operation {op.kind}")


def _int(a: dict[str, Any], k: str) -> int:
    v = a.get(k)
    if not isinstance(v, int) or isinstance(v, bool):
        raise RelayError(f"argument {k!r} must be an integer")
    return v


def _str(a: dict[str, Any], k: str) -> str:
    v = a.get(k)
    if not isinstance(v, str):
        raise RelayError(f"argument {k!r} must be text")
    return v


# ---- the socket the ClientApp talks to ------------------------------------------------------------------
def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(SOCKET_MAGIC + _LEN.pack(len(payload)) + payload)


def recv_frame(sock: socket.socket, limit: int) -> bytes:
    head = _recv_exact(sock, 8)
    if head[:4] != SOCKET_MAGIC:
        raise RelayError("not a tinyfed relay frame")
    n = _LEN.unpack(head[4:])[0]
    if n > limit:
        raise RelayError(f"relay frame of {n} bytes exceeds {limit}")
    return _recv_exact(sock, n)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise ConnectionError("relay socket closed mid-frame")
        buf += chunk
    return bytes(buf)


def relay_handler(boards: GatewayBoards) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Relay request fields -> reply fields (``{"fault": …}`` if the request is malformed)."""

    def handle(fields: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(boards.handle(RelayRequest.from_fields(fields)).to_fields())
        except RelayError as e:
            return {"fault": f"gateway {boards.name}: {e}"}

    return handle


def call_gateway(path: str, fields: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Hand one relay request to the gateway at ``path`` and wait for its reply fields (ClientApp side)."""
    from .relay import MAX_PACKED

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        send_frame(s, pack_fields(fields))
        return unpack_fields(recv_frame(s, MAX_PACKED))


class RelayServer:
    """Serves relay requests on a Unix socket in a private folder (mode 0700): one request per connection."""

    def __init__(self, boards: GatewayBoards, log: Callable[[str], None] = print) -> None:
        self.boards = boards
        self.log = log
        self._handle = relay_handler(boards)
        self.dir = Path(tempfile.mkdtemp(prefix="tinyfed-gateway-"))
        os.chmod(self.dir, 0o700)
        self.path = str(self.dir / "relay.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="relay", daemon=True)

    def start(self) -> "RelayServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        from .relay import MAX_PACKED

        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn, MAX_PACKED), daemon=True).start()

    def _one(self, conn: socket.socket, limit: int) -> None:
        with conn:
            try:
                fields = unpack_fields(recv_frame(conn, limit))
                send_frame(conn, pack_fields(self._handle(fields)))
            except (OSError, RelayError, ConnectionError) as e:
                self.log(f"[gateway] relay connection dropped: {e}")

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the SuperNode -------------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def supernode_env() -> dict[str, str]:
    """The SuperNode's environment: this Python's scripts first on PATH (the SuperNode starts
    ``flower-superexec``, which starts ``flwr-clientapp``, by name), and a short SuperExec poll."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SuperNodeSupervisor:
    """Runs ``flower-supernode`` for the gateway and starts it again when it exits."""

    def __init__(self, opt: GatewayOptions, socket_path: str | None, runtime_port: int, log_path: Path,
                 log: Callable[[str], None] = print) -> None:
        self.opt = opt
        self.socket_path = socket_path
        self.runtime_port = runtime_port
        self.log_path = log_path
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supernode", daemon=True)

    def argv(self) -> list[str]:
        o = self.opt
        cfg = f'{NODE_NAME_KEY}="{o.name}"'
        if self.socket_path:
            cfg += f' {NODE_SOCKET_KEY}="{self.socket_path}"'
        argv = [o.supernode, "--superlink", o.superlink, "--port", str(self.runtime_port), "--node-config", cfg,
                "--isolation", "subprocess" if self.socket_path else "process"]
        if o.insecure:
            argv.append("--insecure")
        elif o.root_certificates:
            argv += ["--root-certificates", str(o.root_certificates)]
        if o.auth_key:
            argv += ["--auth-supernode-private-key", str(o.auth_key)]
        return argv + list(o.extra_supernode_args)

    def start(self) -> "SuperNodeSupervisor":
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        exe = shutil.which(self.opt.supernode, path=supernode_env()["PATH"])
        if exe is None:
            raise GatewayError(f"{self.opt.supernode} not found: install flwr (pip install 'flwr[simulation]==1.42.*')")
        argv = [exe, *self.argv()[1:]]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         env=supernode_env(), preexec_fn=_die_with_parent)
        self.starts += 1
        self.log(f"[gateway] SuperNode started (pid {self.proc.pid}, SuperLink {self.opt.superlink}, "
                 f"log {self.log_path})")

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            p = self.proc
            if p is not None and p.poll() is not None and not self._stop.is_set():
                self.log(f"[gateway] SuperNode exited with status {p.returncode}; starting it again in "
                         f"{self.opt.restart_delay:.0f} s")
                if self._stop.wait(self.opt.restart_delay):
                    return
                try:
                    self._spawn()
                except (OSError, GatewayError) as e:
                    self.log(f"[gateway] cannot start the SuperNode: {e}")

    def stop(self) -> None:
        self._stop.set()
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


# ---- the whole gateway -----------------------------------------------------------------------------------
class Gateway:
    """Boards + relay socket + SuperNode (a context manager; :meth:`serve_forever` blocks)."""

    def __init__(self, opt: GatewayOptions, *, connector: Connector | None = None,
                 log: Callable[[str], None] = print, workdir: Path | None = None) -> None:
        self.opt = opt.checked()
        self.log = log
        self.boards = GatewayBoards(self.opt.name, self.opt.ports,
                                    connector or serial_connector(self.opt.timeout, self.opt.retries), log)
        self.relay: RelayServer | None = None
        self.executor: Any = None
        self.supernode: SuperNodeSupervisor | None = None
        self.workdir = Path(workdir) if workdir else None

    def start(self) -> "Gateway":
        if self.supernode is not None:
            return self  # already started (tinyfed.gateway() starts it; `with` then only stops it)
        self.boards.open_all()
        online = sum(1 for b in self.boards.boards.values() if b.online)
        self.log(f"[gateway] {self.opt.name}: {online} of {len(self.boards.boards)} board(s) online")
        port = self.opt.runtime_port or free_port()
        if self.opt.isolation == "subprocess":
            self.relay = RelayServer(self.boards, self.log).start()
            sock: str | None = self.relay.path
        else:
            from .executor import InProcessExecutor

            self.executor = InProcessExecutor(f"127.0.0.1:{port}", relay_handler(self.boards), log=self.log).start()
            sock = None
        logdir = Path(self.workdir) if self.workdir else Path(tempfile.mkdtemp(prefix="tinyfed-gateway-log-"))
        logdir.mkdir(parents=True, exist_ok=True)
        self.supernode = SuperNodeSupervisor(self.opt, sock, port, logdir / f"supernode-{self.opt.name}.log",
                                             self.log).start()
        return self

    def serve_forever(self) -> None:
        stop = threading.Event()

        def _stop(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop.wait(0.5):
            pass

    def close(self) -> None:
        if self.executor is not None:
            self.executor.stop()
        if self.supernode is not None:
            self.supernode.stop()
        if self.relay is not None:
            self.relay.close()
        self.boards.close()
        self.log(f"[gateway] {self.opt.name}: stopped")

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["GatewayBoard", "Gateway", "GatewayBoards", "GatewayError", "GatewayOptions", "RelayServer",
           "SuperNodeSupervisor", "call_gateway", "info_fields", "serial_connector", "superlink_address_problem"]
