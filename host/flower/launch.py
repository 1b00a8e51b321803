"""Starting the Flower side of a deployment: a SuperLink (``flower-superlink``),
the Flower CLI configuration that points ``flwr`` at it, and ``flwr run`` of
tinyfed's app (what ``tinyfed flower run`` does).

A SuperLink serves everything on one HTTP(S) port (Fleet API for the
gateways' SuperNodes, Control API for ``flwr run``, Runtime API for the
ServerApp).  Runtime dependency installation is off: the ServerApp imports
the installed tinyfed.

The Flower CLI reads its connections from ``$FLWR_HOME/config.toml``; tinyfed
writes its own there (:func:`write_flower_config`) in a folder of its own
(default ``build/flower/home``) so it never edits the user's ``~/.flwr``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinyfed_toolchain.facts.errors import DeviceFailure

from .gateway import _die_with_parent, free_port, supernode_env

#: the connection name tinyfed writes into its Flower config
CONNECTION = "tinyfed"


class FlowerLaunchError(DeviceFailure, RuntimeError):
    """A Flower process could not be started or a run failed (one line for the CLI)."""


def app_dir() -> Path:
    """The folder ``flwr run`` builds tinyfed's Flower app (FAB) from."""
    return Path(__file__).resolve().parent / "app"


def flower_env(flwr_home: Path | None = None) -> dict[str, str]:
    env = supernode_env()
    if flwr_home is not None:
        env["FLWR_HOME"] = str(flwr_home)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_flower_config(flwr_home: Path, address: str, *, insecure: bool = False,
                        root_certificates: str | None = None) -> Path:
    """``$FLWR_HOME/config.toml`` with one connection, :data:`CONNECTION`, the default."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f"default = {_toml_str(CONNECTION)}", "", f"[superlink.{CONNECTION}]",
             f"address = {_toml_str(address)}"]
    if insecure:
        lines.append("insecure = true")
    elif root_certificates:
        lines.append(f"root-certificates = {_toml_str(str(Path(root_certificates).resolve()))}")
    path = flwr_home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class SuperLink:
    """A ``flower-superlink`` this process started (stop it with :meth:`stop`)."""

    proc: subprocess.Popen[bytes]
    address: str
    log_path: Path
    flwr_home: Path
    _log: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "SuperLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def start_superlink(workdir: Path, *, port: int = 0, host: str = "127.0.0.1", insecure: bool = True,
                    ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                    ssl_ca_certfile: str | None = None, startup_timeout: float = 60.0) -> SuperLink:
    """Start a SuperLink on ``host:port`` (0: a free port); returns once it accepts connections.
    Its superexec and ServerApp processes run with this Python's scripts on PATH and
    ``FLWR_HOME`` = ``workdir/home``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    port = port or free_port()
    exe = shutil.which("flower-superlink", path=flower_env()["PATH"])
    if exe is None:
        raise FlowerLaunchError("flower-superlink not found: install flwr (pip install 'flwr[simulation]==1.42.*')")
    argv = [exe, "--host", host, "--port", str(port), "--disable-runtime-dependency-installation",
            "--database", str(workdir / "state.db")]
    if insecure:
        argv.append("--insecure")
    else:
        if not (ssl_certfile and ssl_keyfile and ssl_ca_certfile):  # flower-superlink refuses fewer
            raise FlowerLaunchError("a TLS SuperLink needs its certificate, its key and the CA certificate "
                                    "that signed it (the SuperExec and ServerApp verify the SuperLink with it)")
        argv += ["--ssl-certfile", ssl_certfile, "--ssl-keyfile", ssl_keyfile, "--ssl-ca-certfile", ssl_ca_certfile]
    log_path = workdir / "superlink.log"
    logf = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            env=flower_env(home), cwd=str(workdir), preexec_fn=_die_with_parent)
    sl = SuperLink(proc, f"{host}:{port}", log_path, home, logf)
    t0 = time.monotonic()
    while not _port_open(host, port):
        if proc.poll() is not None or time.monotonic() - t0 > startup_timeout:
            sl.stop()
            tail = log_path.read_text(errors="replace")[-800:]
            raise FlowerLaunchError(f"flower-superlink did not start on {host}:{port}:\n{tail}")
        time.sleep(0.2)
    return sl


def run_config_arg(cfg: Mapping[str, Any]) -> str:
    """``--run-config`` text: key=value pairs, values as TOML (strings quoted)."""
    parts = []
    for k, v in cfg.items():
        if isinstance(v, bool):
            parts.append(f"{k}={'true' if v else 'false'}")
        elif isinstance(v, (int, float)):
            parts.append(f"{k}={v!r}")
        else:
            parts.append(f"{k}={_toml_str(str(v))}")
    return " ".join(parts)


def flwr_run(address: str, run_config: Mapping[str, Any], *, flwr_home: Path, insecure: bool = False,
             root_certificates: str | None = None, stream: bool = True, timeout: float | None = None,
             app: Path | None = None, extra_args: Sequence[str] = ()) -> int:
    """``flwr run <app> tinyfed --run-config … [--stream]`` against the SuperLink at ``address``;
    returns flwr's exit status (with ``stream``, once the run has finished)."""
    write_flower_config(flwr_home, address, insecure=insecure, root_certificates=root_certificates)
    exe = shutil.which("flwr", path=flower_env()["PATH"])
    if exe is None:
        raise FlowerLaunchError("flwr not found: install flwr (pip install 'flwr[simulation]==1.42.*')")
    argv = [exe, "run", str(app or app_dir()), CONNECTION, "--run-config", run_config_arg(run_config)]
    if stream:
        argv.append("--stream")
    proc = subprocess.run([*argv, *extra_args], env=flower_env(flwr_home), timeout=timeout, stdin=subprocess.DEVNULL)
    return int(proc.returncode)



__all__ = ["CONNECTION", "FlowerLaunchError", "SuperLink", "app_dir", "flower_env", "flwr_run", "run_config_arg",
           "start_superlink", "write_flower_config"]
