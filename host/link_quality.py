"""How noisy a link is, and the chunk size that moves a transfer fastest over it.

:class:`LinkQuality` estimates the link's byte error rate ``q`` (the chance
that a byte is flipped, lost or injected) from the fate of the frame
exchanges the client ran: an exchange of ``n`` bytes gets through with
probability ``(1 - q)^n``.  The estimate is the maximum of the (exponentially
forgetting) log-likelihood over a log-spaced grid of ``q``, starting from a
prior of clean traffic, so one lost frame on a good line does not shrink the
chunks, while a line where most 1 KiB frames fail is recognised within a few
exchanges.

:meth:`LinkQuality.best_chunk` then picks the chunk size with the highest
expected payload rate: a chunk of ``L`` bytes costs ``L + overhead`` bytes on
the link per attempt, gets through with ``(1 - q)^(L + overhead)``, and a
failed one also wastes the ``go_back`` frames sent behind it (go-back-N).
"""

from __future__ import annotations

import math

import numpy as np

#: the byte error rates considered (1e-7 .. 0.2, log-spaced)
Q_GRID = np.geomspace(1e-7, 0.2, 72)
_LOG_OK = np.log1p(-Q_GRID)  # log(1 - q) per byte

#: chunk sizes a transfer chooses from (bytes of payload per frame)
CHUNK_SIZES = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


class LinkQuality:
    """Byte-error-rate estimate of one link (see the module docstring)."""

    def __init__(self, *, memory: float = 0.99, prior_bytes: int = 2048) -> None:
        if not 0 < memory <= 1:
            raise ValueError("memory must be in (0, 1]")
        self.memory = memory
        self._ll = prior_bytes * _LOG_OK  # as if prior_bytes had crossed without an error
        self.exchanges = 0
        self.failures = 0

    def ok(self, nbytes: int) -> None:
        """An exchange of ``nbytes`` (request and reply on the wire) went through."""
        self._observe(nbytes, True)

    def lost(self, nbytes: int) -> None:
        """An exchange of about ``nbytes`` failed (a frame was corrupt or lost)."""
        self._observe(nbytes, False)

    def _observe(self, nbytes: int, ok: bool) -> None:
        n = max(1, int(nbytes))
        self._ll *= self.memory
        if ok:
            self._ll += n * _LOG_OK
        else:
            self._ll += np.log(-np.expm1(n * _LOG_OK))  # log(1 - (1 - q)^n)
            self.failures += 1
        self.exchanges += 1

    @property
    def byte_error_rate(self) -> float:
        return float(Q_GRID[int(np.argmax(self._ll))])

    def payload_rate(self, size: int, *, overhead: int, go_back: int = 0) -> float:
        """Expected payload bytes per byte sent, in chunks of ``size``: an attempt costs
        ``size + overhead`` bytes and gets through with ``(1 - q)^(size + overhead)``; a failed
        one also wastes the ``go_back`` frames sent behind it."""
        frame = size + overhead
        p = math.exp(frame * math.log1p(-self.byte_error_rate))
        return size * p / (frame * (1.0 + go_back * (1.0 - p)))

    def best_chunk(self, cap: int, *, overhead: int, go_back: int = 0, floor: int = CHUNK_SIZES[0]) -> int:
        """The chunk size in ``CHUNK_SIZES`` (at most ``cap``, at least ``floor``) with the
        highest :meth:`payload_rate` (``cap`` itself when no listed size fits)."""
        sizes = [c for c in CHUNK_SIZES if floor <= c <= cap]
        if not sizes:
            return cap
        return max(sizes, key=lambda c: self.payload_rate(c, overhead=overhead, go_back=go_back))


__all__ = ["LinkQuality", "CHUNK_SIZES", "Q_GRID"]
