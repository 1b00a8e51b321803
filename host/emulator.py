"""Launch emulated boards (qemu-system-arm) and clean them up, always.

Each board is one QEMU process whose UART0 is a TCP server on 127.0.0.1
(``-serial tcp:127.0.0.1:PORT,server=on,wait=on``: the guest does not start
until the host connects, so no output is lost); its URL, for pyserial's
``serial.serial_for_url``, is ``socket://127.0.0.1:PORT``.  Semihosting is on:
the firmware's log (``tfd_port_log``) goes to a per-board log file and its exit
status (``tfd_port_exit``) becomes the QEMU process's exit code.

Every process started here is registered and killed at interpreter exit
(``atexit``), on SIGTERM/SIGINT (handlers chain to the previous ones), when its
``Emulator`` context ends, and, where ``setpriv`` exists, by the kernel if this
process dies (parent-death signal).

The semihosting command line passes per-boot values to the port
(boards/common/mps2): ``--seed=<64 hex>`` (fresh ``os.urandom`` per boot; mixed
into the emulated, NOT secure, random source), ``--storage=<path>`` (host file
backing the persistent storage) and ``--icount-shift=N`` (bench counter).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Iterable, Sequence

from tinyfed_toolchain.facts.errors import DeviceFailure, InputError
from tinyfed_toolchain.image.firmware import load_board

from .child_process import terminate

QEMU = "qemu-system-arm"
DEFAULT_BOARD = "mps2-an386"
_LISTEN_TIMEOUT_S = 10.0
_PORT_RETRIES = 8


class EmulatorError(DeviceFailure, RuntimeError):
    """QEMU could not be started or did not behave."""


class EmulatorTimeout(EmulatorError, TimeoutError):
    """The guest did not exit in time (the message carries its output so far)."""


# --------------------------------------------------------------------------
# process registry and cleanup


_LIVE: set["Board"] = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}


def stop_all() -> None:
    """Stop every QEMU process this interpreter started and has not reaped."""
    with _LIVE_LOCK:
        boards = list(_LIVE)
    for board in boards:
        board.stop(timeout=1.0)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    stop_all()
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    # SIG_IGN: nothing more to do


def _install_cleanup() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            _PREVIOUS[signum] = signal.getsignal(signum)
            signal.signal(signum, _on_signal)
        except (ValueError, OSError):
            pass


def _death_signal_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL``: the kernel kills QEMU if we die."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


# --------------------------------------------------------------------------
# command lines


def _qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise EmulatorError(f"{QEMU} not found: apt-get install qemu-system-arm")
    return path


def _semihosting_config(args: Sequence[str], chardev: str | None) -> str:
    parts = ["enable=on", "target=native"]
    if chardev:
        parts.append(f"chardev={chardev}")
    for arg in args:
        if " " in arg:
            raise InputError(f"semihosting argument {arg!r} must not contain spaces")
        parts.append("arg=" + arg.replace(",", ",,"))
    return ",".join(parts)


def qemu_argv(
    board: str,
    elf: Path,
    *,
    serial: str,
    semihosting_args: Sequence[str] = (),
    icount_shift: int | None = None,
    semihosting_log: Path | None = None,
    icount_align: bool = False,
) -> list[str]:
    """The qemu-system-arm command line for one board.

    ``semihosting_log``: file that receives the firmware's semihosting console
    output (else QEMU picks stdout or stderr depending on the serial setup).
    ``icount_align``: with ``icount_shift``, hold the guest to real time
    (``align=on,sleep=on``): it then executes at most 10^9 / 2^shift
    instructions per second of wall time, a board of that speed."""
    spec = load_board(board)
    qemu = spec.spec.get("qemu")
    if not qemu:
        raise EmulatorError(f"board {board!r} is not emulated by QEMU (see boards/README.md)")
    argv = [_qemu_binary(), "-M", qemu["machine"]]
    if qemu.get("cpu"):
        argv += ["-cpu", qemu["cpu"]]
    argv += [
        "-kernel", str(Path(elf).resolve()),
        "-display", "none",
        "-monitor", "none",
        "-serial", serial,
    ]
    chardev = None
    if semihosting_log is not None:
        chardev = "tfdsemi"
        path = str(Path(semihosting_log).resolve()).replace(",", ",,")
        argv += ["-chardev", f"file,id={chardev},path={path}"]
    argv += ["-semihosting-config",
             _semihosting_config(["firmware", *semihosting_args], chardev)]
    if icount_shift is not None:
        argv += ["-icount", f"shift={int(icount_shift)}" + (",align=on,sleep=on" if icount_align else "")]
    return argv


def _boot_args(seed: bytes | None, storage: Path | None, icount_shift: int | None,
               extra: Sequence[str]) -> list[str]:
    args = [f"--seed={(seed if seed is not None else secrets.token_bytes(32)).hex()}"]
    if storage is not None:
        args.append(f"--storage={Path(storage).resolve()}")
    if icount_shift is not None:
        args.append(f"--icount-shift={int(icount_shift)}")
    args += list(extra)
    return args


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------
# a running board


@dataclass(eq=False)
class Board:
    """One running QEMU board.  ``url`` is its UART for pyserial."""

    name: str
    index: int
    port: int
    elf: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    err_path: Path
    _files: list[Any] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The firmware's exit code once QEMU has exited (negative: killed by a signal)."""
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the guest to exit; its exit code, or None on timeout."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._release()
        return code

    def log(self) -> str:
        """What the firmware printed through semihosting so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def exit_reason(self) -> str:
        """Why QEMU is gone, in words (call once it has exited): the firmware's exit
        status or the signal that killed it, and the last thing it or QEMU said."""
        code = self.proc.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                why = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                why = f"killed by signal {-code}"
        else:
            why = f"exited with status {code}"
        last = ""
        for path in (self.log_path, self.err_path):  # the firmware's last words, else QEMU's
            try:
                lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                         if ln.strip() and "waiting for connection" not in ln]
            except OSError:
                continue
            if lines:
                last = lines[-1][:160]
                break
        return why + (f" (last output: {last})" if last else "")

    def stop(self, timeout: float = 3.0) -> int | None:
        """Terminate QEMU (SIGTERM, then SIGKILL); returns its exit code."""
        if self.proc.poll() is None:
            try:
                terminate(self.proc, timeout)
            except ProcessLookupError:
                pass
        self._release()
        return self.proc.returncode

    def _release(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass
        self._files.clear()


def _wait_listening(proc: subprocess.Popen[bytes], err_path: Path, deadline: float) -> str:
    """Return 'ok' once QEMU listens, 'port' if the port was taken, else raise."""
    while time.monotonic() < deadline:
        text = err_path.read_text(errors="replace") if err_path.exists() else ""
        if "waiting for connection" in text:
            return "ok"
        if proc.poll() is not None:
            if "Address already in use" in text or "Failed to bind" in text:
                return "port"
            raise EmulatorError(f"QEMU exited ({proc.returncode}) before listening:\n{text.strip()}")
        time.sleep(0.01)
    raise EmulatorError(f"QEMU did not start listening within {_LISTEN_TIMEOUT_S} s")


def launch(
    board: str,
    elf: Path,
    *,
    index: int = 0,
    icount_shift: int | None = None,
    seed: bytes | None = None,
    storage: Path | None = None,
    extra_args: Sequence[str] = (),
    log_dir: Path | None = None,
    icount_align: bool = False,
) -> Board:
    """Start one board with its UART on a free TCP port; returns when QEMU
    listens (the guest starts when the host connects to ``board.url``).
    ``icount_align``: see :func:`qemu_argv` (a board held to a real speed)."""
    _install_cleanup()
    elf = Path(elf)
    if not elf.is_file():
        raise EmulatorError(f"image {elf} does not exist")
    log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="tinyfed-qemu-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    semi = _boot_args(seed, storage, icount_shift, extra_args)
    for _attempt in range(_PORT_RETRIES):
        port = _free_port()
        log_path = log_dir / f"board{index}.log"
        err_path = log_dir / f"board{index}.qemu.err"
        argv = qemu_argv(board, elf, serial=f"tcp:127.0.0.1:{port},server=on,wait=on",
                         semihosting_args=semi, icount_shift=icount_shift,
                         semihosting_log=log_path, icount_align=icount_align)
        out = open(log_dir / f"board{index}.qemu.out", "wb")
        err = open(err_path, "wb")
        proc = subprocess.Popen(
            _death_signal_prefix() + argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True,  # a terminal's ^C reaches us, not QEMU directly
        )
        b = Board(name=board, index=index, port=port, elf=elf, proc=proc,
                  log_path=log_path, err_path=err_path, _files=[out, err])
        with _LIVE_LOCK:
            _LIVE.add(b)
        try:
            state = _wait_listening(proc, err_path, time.monotonic() + _LISTEN_TIMEOUT_S)
        except BaseException:
            b.stop()
            raise
        if state == "ok":
            return b
        b.stop()
    raise EmulatorError(f"no free TCP port after {_PORT_RETRIES} attempts")


def supervise(boards: Sequence[Board], should_stop: Any, report: Any, *, poll: float = 0.2) -> list[Board]:
    """Watch ``boards`` until ``should_stop()`` is true or none is left running; each
    board that exits on its own is reported once, as it goes (``report(line)``).
    Returns the boards that died."""
    alive = list(boards)
    dead: list[Board] = []
    while alive and not should_stop():
        for b in list(alive):
            if not b.running():
                alive.remove(b)
                dead.append(b)
                left = f"{len(alive)} of {len(boards)} still running" if alive else "no board left"
                report(f"board {b.index} ({b.url}, QEMU pid {b.pid}) {b.exit_reason()}; {left}")
        if alive:
            time.sleep(poll)
    return dead


def _log2_slowdown(s: int) -> int:
    """log2 of a board slowdown, which must be a power of two from 1 to 1024 (an icount shift step)."""
    s = int(s)
    if s < 1 or s > 1024 or s & (s - 1):
        raise InputError(f"board slowdown {s}: a power of two from 1 to 1024 (QEMU -icount shift steps)")
    return s.bit_length() - 1


def parse_slowdowns(text: str, n: int) -> list[int]:
    """``"1,1,4,8"`` -> one slowdown per board (a single value applies to all ``n``)."""
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--slowdown {text!r}: comma-separated powers of two, one per board") from None
    if len(vals) == 1:
        vals *= n
    if len(vals) != n:
        raise InputError(f"--slowdown {text!r}: {len(vals)} values for {n} boards")
    for v in vals:
        _log2_slowdown(v)
    return vals


def start_boards(
    n: int,
    board: str = DEFAULT_BOARD,
    images: Sequence[Path] | Path = (),
    icount: int | None = None,
    *,
    storage_dir: Path | None = None,
    seeds: Sequence[bytes] | None = None,
    log_dir: Path | None = None,
    slowdowns: Sequence[int] | None = None,
) -> list[Board]:
    """Start ``n`` boards.  ``images``: one ELF for all, or one per board.

    ``storage_dir``: if given, board i's persistent storage is backed by
    ``storage_dir/board<i>.storage`` (survives restarts).  ``slowdowns``: one
    power of two per board; board i then runs under ``-icount
    shift=icount + log2(slowdown_i),align=on``: held to real time at
    10^9 / 2^shift instructions per second (shift 6: 15.6 M), so a board with
    slowdown 8 computes 8 times slower than one with slowdown 1 -- unequal
    boards (``icount`` defaults to 6 then; each board reports instructions
    with its own shift).  On any failure the boards already started are
    stopped before the error propagates.
    """
    if isinstance(images, (str, Path)):
        image_list = [Path(images)] * n
    else:
        image_list = [Path(p) for p in images]
        if len(image_list) == 1:
            image_list *= n
    if len(image_list) != n:
        raise InputError(f"{len(image_list)} images for {n} boards")
    if seeds is not None and len(seeds) != n:
        raise InputError(f"{len(seeds)} seeds for {n} boards")
    shifts: list[int | None] = [icount] * n
    if slowdowns is not None:
        shifts = [(6 if icount is None else int(icount)) + _log2_slowdown(s) for s in slowdowns]
        if len(shifts) != n:
            raise InputError(f"{len(shifts)} slowdowns for {n} boards")
    started: list[Board] = []
    try:
        for i, elf in enumerate(image_list):
            storage = Path(storage_dir) / f"board{i}.storage" if storage_dir else None
            if storage is not None:
                storage.parent.mkdir(parents=True, exist_ok=True)
            started.append(launch(board, elf, index=i, icount_shift=shifts[i],
                                  seed=seeds[i] if seeds else None, storage=storage,
                                  log_dir=log_dir, icount_align=slowdowns is not None))
    except BaseException:
        for b in started:
            b.stop()
        raise
    return started


class Emulator:
    """A set of boards stopped together; a context manager.

    >>> with Emulator() as emu:  # doctest: +SKIP
    ...     boards = emu.start(4, images=[elf])
    ...     urls = [b.url for b in boards]
    """

    def __init__(self, board: str = DEFAULT_BOARD) -> None:
        self.board = board
        self.boards: list[Board] = []

    def start(self, n: int, images: Sequence[Path] | Path = (), icount: int | None = None,
              **kwargs: Any) -> list[Board]:
        boards = start_boards(n, self.board, images, icount, **kwargs)
        self.boards += boards
        return boards

    def stop(self) -> None:
        for b in self.boards:
            b.stop()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------
# run an image to completion


def run_to_exit(
    elf: Path,
    board: str = DEFAULT_BOARD,
    icount_shift: int | None = None,
    timeout: float = 60.0,
    *,
    args: Iterable[str] = (),
    seed: bytes | None = None,
    storage: Path | None = None,
    stdin_bytes: bytes | None = None,
) -> tuple[int, str]:
    """Run a bench/test image that logs over semihosting and exits.

    The UART is discarded (``-serial null``) unless ``stdin_bytes`` is given,
    in which case UART0 is QEMU's stdio: the bytes are its input and its output
    is mixed into the returned text.  Returns ``(exit_code, semihosting
    output)``; raises ``TimeoutError`` (with the output so far) if the guest
    has not exited after ``timeout`` s, after killing QEMU.
    """
    _install_cleanup()
    if not Path(elf).is_file():
        raise EmulatorError(f"image {elf} does not exist")
    semi = _boot_args(seed, storage, icount_shift, list(args))
    with tempfile.TemporaryDirectory(prefix="tinyfed-run-") as tmp:
        log_path = Path(tmp) / "semihosting.log"
        out_path = Path(tmp) / "out"
        err_path = Path(tmp) / "err"
        argv = qemu_argv(board, Path(elf), serial="stdio" if stdin_bytes is not None else "null",
                         semihosting_args=semi, icount_shift=icount_shift,
                         semihosting_log=log_path)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                _death_signal_prefix() + argv,
                stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True,
            )
            b = Board(name=board, index=0, port=0, elf=Path(elf), proc=proc,
                      log_path=log_path, err_path=err_path)
            with _LIVE_LOCK:
                _LIVE.add(b)
            try:
                if stdin_bytes is not None and proc.stdin is not None:
                    proc.stdin.write(stdin_bytes)
                    proc.stdin.flush()
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                b.stop()
                raise EmulatorTimeout(
                    f"{elf} did not exit within {timeout} s; output so far:\n" + b.log()
                ) from None
            finally:
                if proc.stdin is not None:
                    proc.stdin.close()
                b.stop()
        text = b.log()
        if stdin_bytes is not None:
            text += out_path.read_text(errors="replace")
        errors = err_path.read_text(errors="replace").strip()
    if code < 0 or (errors and "fatal" in errors):
        text += f"\n[qemu stderr]\n{errors}\n"
    return code, text


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tinyfed_host.emulator ELF [-n N] [--board B]``: start boards,
    print one URL per line, stop them on Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description="start emulated tinyfed boards")
    parser.add_argument("elf", type=Path)
    parser.add_argument("-n", "--boards", type=int, default=1)
    parser.add_argument("--board", default=DEFAULT_BOARD)
    parser.add_argument("--icount", type=int)
    parser.add_argument("--storage-dir", type=Path)
    a = parser.parse_args(argv)
    with Emulator(a.board) as emu:
        for b in emu.start(a.boards, images=a.elf, icount=a.icount, storage_dir=a.storage_dir):
            print(b.url, flush=True)
        try:
            while any(b.running() for b in emu.boards):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
