"""One error base for all of tinyfed's Python: :class:`TinyfedError`.

The Python counterpart of the C side's ``tfd_status_t``: every error tinyfed
raises on purpose derives from it and carries a message meant for the user
(its first line says what went wrong; further lines, if any, are details such
as a compiler's output) and the exit code the ``tinyfed`` command returns.
Anything else that escapes is a bug and keeps its traceback.

Exit codes of the ``tinyfed`` command:

====  ===========================================================================
0     done
1     ran, but the result failed its check (``verify`` mismatches, no round completed)
2     refused: bad options or input (model, data, board, budget, checkpoint...)
3     a build step failed (compiler, linker, third-party fetch, native engine)
4     a device, link or emulator failed (timeouts, protocol errors, aborted rounds)
130   interrupted (Ctrl-C)
====  ===========================================================================

The error classes keep their built-in bases too (``ValueError``, ``OSError``,
``TimeoutError``...), so code that catches those still works.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_BUILD = 3
EXIT_DEVICE = 4
EXIT_INTERRUPTED = 130


class TinyfedError(Exception):
    """Base of every error tinyfed raises on purpose (exit code 2: refused input)."""

    exit_code: int = EXIT_REFUSED

    @property
    def headline(self) -> str:
        """The first line of the message: what the CLI prints after ``tinyfed: error:``."""
        text = str(self).strip()
        return text.splitlines()[0] if text else type(self).__name__

    @property
    def details(self) -> list[str]:
        """The message's further lines (a compiler's output, the numbers of a refusal)."""
        return [line for line in str(self).strip().splitlines()[1:] if line.strip()]


class OptionsError(TinyfedError, ValueError):
    """Options that contradict each other or are out of range (exit code 2)."""


class InputError(TinyfedError, ValueError):
    """Data handed to tinyfed does not fit what it is for: shapes, dtypes, counts (exit code 2)."""


class BuildStepError(TinyfedError):
    """A build step failed: compiler, linker, the third-party fetch, the native engine (exit code 3)."""

    exit_code = EXIT_BUILD


class DeviceFailure(TinyfedError):
    """A device, a link or an emulator failed (exit code 4)."""

    exit_code = EXIT_DEVICE


__all__ = [
    "TinyfedError", "OptionsError", "InputError", "BuildStepError", "DeviceFailure",
    "EXIT_OK", "EXIT_FAILED", "EXIT_REFUSED", "EXIT_BUILD", "EXIT_DEVICE", "EXIT_INTERRUPTED",
]
