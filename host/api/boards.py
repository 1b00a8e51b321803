"""The board verbs: ``emulate`` (boot boards under QEMU), ``device_info`` and ``evaluate``."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tinyfed_host.emulator import Board, start_boards, supervise
from tinyfed_host.protocol import DeviceClient, DeviceInfo, EvalResult

from .model import ensure_images
from .options import EmulateOptions


class EmulatedBoards(list[str]):
    """The serial URLs of running emulated boards (a list of ``str``); ``boards``
    holds the QEMU processes (pid, running, stop)."""

    def __init__(self, boards: Sequence[Board]) -> None:
        super().__init__(b.url for b in boards)
        self.boards = list(boards)

    @property
    def running(self) -> bool:
        """Whether any board still runs."""
        return any(b.running() for b in self.boards)

    def watch(self, should_stop: Callable[[], bool], report: Callable[[str], None]) -> list[Board]:
        """Until ``should_stop()`` or no board is left: report each board that dies (which,
        why, how many are left) as it goes; returns the boards that died."""
        return supervise(self.boards, should_stop, report)

    def stop(self) -> None:
        for b in self.boards:
            b.stop()


@contextmanager
def emulate(options: EmulateOptions | None = None, /, **fields: Any) -> Iterator[EmulatedBoards]:
    """Start N emulated boards; yield their serial URLs; stop them on leaving the block::

        with tinyfed.emulate(boards=2, build=Path("build/mine")) as urls:
            tinyfed.fleet(ports=urls, build=Path("build/mine"))

    The boards run the build's device images (built first when missing), or
    ``image`` on every board.  ``slowdowns`` (one power of two per board) makes
    them unequal: each is held to real time at 10^9 / 2^icount instructions per
    second / its slowdown (icount None: 6, i.e. 15.6 MIPS / slowdown).
    """
    opts = options if options is not None else EmulateOptions(**fields)
    opts.check()
    if opts.image is not None:
        images = [Path(opts.image)] * opts.boards
    else:
        images = ensure_images(opts.build, opts.boards, opts.board, opts.dataset)
    boards = EmulatedBoards(start_boards(opts.boards, opts.board, images, opts.icount,
                                         storage_dir=opts.storage, log_dir=opts.log_dir,
                                         slowdowns=opts.slowdowns))
    try:
        yield boards
    finally:
        boards.stop()


def device_info(ports: Sequence[str]) -> list[tuple[str, DeviceInfo]]:
    """What each board runs (HELLO/INFO): board, firmware, protocol, model hash, memory, shard."""
    rows = []
    for url in ports:
        with DeviceClient.connect(url) as dev:
            rows.append((url, dev.hello()))
    return rows


def evaluate(ports: Sequence[str], max_samples: int = 0) -> list[tuple[str, EvalResult]]:
    """Each board evaluates its model on its own shard (only the numbers leave the board)."""
    rows = []
    for url in ports:
        with DeviceClient.connect(url) as dev:
            dev.hello()
            rows.append((url, dev.eval(max_samples)))
    return rows


__all__ = ["emulate", "EmulatedBoards", "device_info", "evaluate"]
