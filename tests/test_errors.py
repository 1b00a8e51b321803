"""One error base: every exception class of toolchain/ and host/ derives from
TinyfedError; the CLI turns one into a one-line message and its exit code; no
verb disappears silently."""

from __future__ import annotations

import ast
import builtins
import inspect
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from tinyfed_host import cli
from tinyfed_toolchain.facts.errors import (
    EXIT_BUILD,
    EXIT_DEVICE,
    EXIT_REFUSED,
    BuildStepError,
    DeviceFailure,
    TinyfedError,
)

ROOT = Path(__file__).resolve().parent.parent
VERBS = {"build", "verify", "emulate", "info", "eval", "fleet", "simulate", "demo"}


def _exception_classes() -> dict[str, list[str]]:
    """Every class of toolchain/ and host/ that derives from an exception, by the
    names of its bases (read from the source: no module needs importing)."""
    bases: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for folder in (ROOT / "toolchain", ROOT / "host"):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    names = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                    assert node.name not in bases or bases[node.name] == names, f"two classes {node.name}"
                    bases[node.name] = names
                    where[node.name] = f"{path.relative_to(ROOT)}"
    builtin = {n for n, o in vars(builtins).items() if inspect.isclass(o) and issubclass(o, BaseException)}

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in builtin:
            return True
        return name not in seen and any(is_exception(b, seen | {name}) for b in bases.get(name, []))

    return {f"{where[n]}:{n}": b for n, b in bases.items() if is_exception(n)}


def _derives_from_tinyfed_error(name: str, bases: dict[str, list[str]]) -> bool:
    return name == "TinyfedError" or any(_derives_from_tinyfed_error(b, bases) for b in bases.get(name, []))


def test_every_exception_class_derives_from_tinyfed_error() -> None:
    found = _exception_classes()
    by_name = {k.split(":")[1]: v for k, v in found.items()}
    stray = [k for k in found if not _derives_from_tinyfed_error(k.split(":")[1], by_name)]
    assert len(found) > 30 and not stray, f"not under TinyfedError: {stray}"


def test_exit_codes_by_family() -> None:
    from tinyfed_host.link import LinkTimeout
    from tinyfed_host.rounds import RefusedError
    from tinyfed_toolchain.compile.tflite_reader import ModelError
    from tinyfed_toolchain.image.native_cc import CompileError

    assert ModelError("x").exit_code == EXIT_REFUSED
    assert RefusedError("x").exit_code == EXIT_REFUSED
    assert isinstance(CompileError("x"), BuildStepError) and CompileError("x").exit_code == EXIT_BUILD
    timeout = LinkTimeout("x")
    assert isinstance(timeout, DeviceFailure) and isinstance(timeout, TimeoutError) and timeout.exit_code == EXIT_DEVICE
    e = CompileError("native compile failed (gcc):\nfoo.c:1: error: bar\n\n  more")
    assert e.headline == "native compile failed (gcc):" and e.details == ["foo.c:1: error: bar", "  more"]


def test_no_verb_disappears_silently() -> None:
    """Every verb is registered, and the CLI swallows no ImportError."""
    parser = cli._build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    assert VERBS <= set(sub.choices)  # type: ignore[attr-defined]
    for path in (ROOT / "host").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)}
                assert not names & {"ImportError", "ModuleNotFoundError"}, f"{path.name}:{node.lineno} swallows an import"


def test_cli_refusal_is_one_line_with_its_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" + bytes(60))
    np.save(tmp_path / "x.npy", np.zeros((1, 4), dtype=np.int8))
    rc = cli.main(["verify", str(bad), "--inputs", str(tmp_path / "x.npy"), "--work", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert rc == EXIT_REFUSED
    assert err.startswith("tinyfed: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_device_failure_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """A board that hangs up: a device failure (exit 4), one line, no traceback."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        threading.Thread(target=lambda: srv.accept()[0].close(), daemon=True).start()
        rc = cli.main(["info", "--port", f"socket://127.0.0.1:{srv.getsockname()[1]}"])
    err = capsys.readouterr().err
    assert rc == EXIT_DEVICE, err
    assert err.startswith("tinyfed: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_contradictory_options_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["build", "--test-images", "--secure-only", "--out", str(tmp_path / "o")])
    assert rc == EXIT_REFUSED and "contradict" in capsys.readouterr().err
    rc = cli.main(["build", "--train-scheme", "lora4-last2-all", "--out", str(tmp_path / "o")])
    assert rc == EXIT_REFUSED and "unknown training scheme" in capsys.readouterr().err
    assert not (tmp_path / "o" / "model.tflite").exists()
