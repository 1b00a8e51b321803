"""The README's TLS deployment, as written: a SuperLink with its certificate, key
and CA (``flower-superlink --ssl-certfile --ssl-keyfile --ssl-ca-certfile``),
one ``tinyfed gateway --root-certificates ca.pem`` with three boards, and
``tinyfed flower run --root-certificates ca.pem``: a secure round through Flower
over TLS.  The boards are host-compiled devices (the device C code served over
TCP like a QEMU board's UART: tests/test_flower_qemu.py runs the same path on
QEMU, insecure).  The CA and a certificate for 127.0.0.1 are made here with
``cryptography`` (a dependency of flwr).

Also checked: the CLI refuses ``--insecure`` together with ``--root-certificates``,
and a gateway that does not trust the SuperLink's CA never joins (its SuperNode
fails the TLS handshake), so the run sees no boards."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr")
x509 = pytest.importorskip("cryptography.x509")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from proc_watch import Proc, descendants, left_running  # noqa: E402
from tinyfed_host.cli import main as cli_main  # noqa: E402
from tinyfed_host.experiment import FlBuild  # noqa: E402
from tinyfed_host.flower.gateway import free_port  # noqa: E402
from tinyfed_host.flower.launch import start_superlink  # noqa: E402
from tinyfed_host.native_device import start_native_devices  # noqa: E402
from tinyfed_host.secagg.identity import ephemeral_fleet  # noqa: E402
from tinyfed_toolchain.image.provision import write_fleet  # noqa: E402


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certificates(folder: Path, name: str = "tinyfed test") -> dict[str, Path]:
    """A CA, and a server certificate it signs for 127.0.0.1 / localhost (PEM files)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    out = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(_pem(key))
    return out


def test_a_secure_round_over_tls(digits_fl_build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the build with a fleet manifest its three devices are provisioned from (SecAgg+ needs identities)
    bdir = tmp_path / "build"
    shutil.copytree(digits_fl_build, bdir)
    build = FlBuild.load(bdir)
    fleet_ids = ephemeral_fleet([1, 2, 3])
    write_fleet(fleet_ids, bdir / "fleet")
    tls = make_certificates(tmp_path / "tls")
    other = make_certificates(tmp_path / "other", "someone else")  # a CA the SuperLink's certificate is not from
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "tinyfed_host.cli"]

    # the CLI refuses the contradiction (a usage error), before starting anything
    with pytest.raises(SystemExit) as exc:
        cli_main(["gateway", "--superlink", "127.0.0.1:1", "--insecure", "--root-certificates", str(tls["ca"]),
                  "--port", "socket://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--root-certificates: not allowed with argument --insecure" in err

    seen: dict[int, int] = {}
    procs: list[Proc] = []
    fleet = start_native_devices(build.model_dir, build.shards[:3], workdir=tmp_path / "devices", storage=False,
                                 fleet=fleet_ids)
    sl = start_superlink(tmp_path / "superlink", insecure=False, ssl_certfile=str(tls["cert"]),
                         ssl_keyfile=str(tls["key"]), ssl_ca_certfile=str(tls["ca"]))
    try:
        def gateway(name: str, ca: Path, ports: list[str]) -> Proc:
            g = Proc([*cli, "gateway", "--superlink", sl.address, "--root-certificates", str(ca), "--name", name,
                      *[a for u in ports for a in ("--port", u)], "--log-dir", str(tmp_path / name)], env)
            procs.append(g)
            return g

        urls = [d.url for d in fleet]
        gw = gateway("gw0", tls["ca"], urls)
        stranger = gateway("gw-untrusting", other["ca"], [f"socket://127.0.0.1:{free_port()}"])  # no board there
        for g in (gw, stranger):
            g.wait_for(lambda s: "SuperNode started" in s, 120)
        report = tmp_path / "report.json"
        run = Proc([*cli, "flower", "run", "--superlink", sl.address, "--root-certificates", str(tls["ca"]),
                    "--build", str(bdir), "--rounds", "1", "--min-devices", "3", "--wait", "120",
                    "--epochs", "1", "--max-samples", "40", "--no-centralised", "--report", str(report),
                    "--flwr-home", str(tmp_path / "flwr-cli")], env)
        procs.append(run)
        run.wait_for(lambda s: "step" in s and "acc" in s, 300)  # the round table started: the run is up
        seen.update(descendants())
        assert run.p.wait(timeout=300) == 0, "\n".join(run.lines[-40:])
        rep = json.loads(report.read_text())
    finally:
        seen.update(descendants())
        for p_ in procs:
            p_.stop()
            (tmp_path / f"proc{procs.index(p_)}.log").write_text("\n".join(p_.lines) + "\n")
        sl.stop()
        fleet.stop()
        left = left_running(seen)
    assert sl.pid in seen
    assert not left, f"processes the test started were left running (killed now): {left}"

    assert rep["engine"] == "flower" and rep["devices"] == 3
    r1 = rep["rounds"][1]
    assert r1["completed"] and r1["updates"] == 3 and r1["secure"] is not None
    assert not any(r1["secure"]["dropouts"].values())
    assert sorted(d["name"].split("/")[0] for d in r1["devices"]) == ["gw0"] * 3
    assert rep["flower"]["gateways"] == ["gw0"]  # the untrusting gateway never joined
    log = (tmp_path / "gw-untrusting").glob("supernode*.log")
    assert any("CERTIFICATE_VERIFY_FAILED" in f.read_text(errors="replace") or "certificate verify failed"
               in f.read_text(errors="replace").lower() for f in log)
