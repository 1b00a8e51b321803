"""Seeded mutants of int8 .tflite models, and the verdict tinyfed gives each one
(tests/test_model_mutants.py, bench/model_mutants.py).

A mutant is a model file damaged the way files get damaged or forged: cut short,
bits flipped, a region zeroed, a 32-bit word replaced by a hostile value (0, -1,
2^24, 2^30, an index just out of range ...), or -- through the flatbuffer
object API, to reach fields random bytes rarely hit -- a tensor's buffer index,
a dimension, a quantization vector or a bias made non-constant.

:func:`judge` runs tinyfed on it as `tinyfed verify` does (reader -> plan ->
emitted C compiled for the host vs the tflite-micro runtime in its child
process) and says what happened:

* ``refused``: a one-line ``TinyfedError`` (the reader, the lowering, the
  reference runtime refusing or crashing, the input checks), no traceback;
* ``accepted``: compiled, and byte for byte equal to the tflite-micro runtime;
* ``wrong``: accepted, and different from the tflite-micro runtime;
* ``crash``: any other exception (a traceback for the user).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HOSTILE = (0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 1 << 24, 1 << 30, 169, 0x10000, 255, 3)


@dataclass(frozen=True)
class Verdict:
    kind: str  # refused | accepted | wrong | crash
    mutation: str
    detail: str


def _u32(buf: bytearray, off: int, value: int) -> None:
    buf[off:off + 4] = int(value & 0xFFFFFFFF).to_bytes(4, "little")


def _structured(model: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Edit one field of the model through the flatbuffer object API and repack."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sg = m.subgraphs[0]
    t = rng.choice(sg.tensors)
    k = rng.randrange(7)
    if k == 0:
        t.buffer = rng.choice([len(m.buffers), len(m.buffers) + 168, 1 << 24, 1 << 30, 0x7FFFFFFF])
        what = f"tensor {t.name!r} buffer -> {t.buffer}"
    elif k == 1 and t.shape is not None and len(t.shape):
        i = rng.randrange(len(t.shape))
        t.shape[i] = rng.choice([0, 1 << 24, t.shape[i] * 2 + 1, 1 << 30])
        what = f"tensor {t.name!r} dim {i} -> {t.shape[i]}"
    elif k == 2 and t.quantization is not None and t.quantization.scale is not None:
        n = len(t.quantization.scale)
        t.quantization.scale = [0.01] * rng.choice([0, n + 1, 3 * n + 5, max(1, n // 2)])
        what = f"tensor {t.name!r} {n} scales -> {len(t.quantization.scale)}"
    elif k == 3 and t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale):
        t.quantization.scale[0] = rng.choice([0.0, -1.0, float("inf"), float("nan"), 1e-45])
        what = f"tensor {t.name!r} scale[0] -> {t.quantization.scale[0]}"
    elif k == 4:
        # a bias / weight made non-constant: its buffer emptied or pointed at buffer 0
        consts = [x for x in sg.tensors if x.buffer and m.buffers[x.buffer].data is not None]
        if not consts:
            return model, "none"
        x = rng.choice(consts)
        if rng.random() < 0.5:
            m.buffers[x.buffer].data = None
        else:
            x.buffer = 0
        what = f"tensor {x.name!r} made non-constant"
    elif k == 5 and sg.operators:
        op = rng.choice(sg.operators)
        if op.inputs is not None and len(op.inputs):
            i = rng.randrange(len(op.inputs))
            op.inputs[i] = rng.choice([len(sg.tensors), -2, 1 << 20, rng.randrange(len(sg.tensors))])
            what = f"op input {i} -> {op.inputs[i]}"
        else:
            return model, "none"
    else:
        if t.quantization is not None and t.quantization.zeroPoint is not None:
            t.quantization.zeroPoint = [rng.choice([-129, 128, 1 << 20])] * max(1, len(t.quantization.zeroPoint))
            what = f"tensor {t.name!r} zero point -> {t.quantization.zeroPoint[0]}"
        else:
            return model, "none"
    b = flatbuffers.Builder(len(model) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output()), what


def mutate(model: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One seeded mutant of ``model`` and a description of what was done."""
    buf = bytearray(model)
    k = rng.randrange(6)
    if k == 0:
        n = rng.randrange(8, len(buf))
        return bytes(buf[:n]), f"truncated to {n} of {len(buf)} bytes"
    if k == 1:
        offs = [rng.randrange(len(buf)) for _ in range(rng.randint(1, 8))]
        for o in offs:
            buf[o] ^= 1 << rng.randrange(8)
        return bytes(buf), f"{len(offs)} bit flips"
    if k == 2:
        o = rng.randrange(len(buf))
        n = rng.randint(1, 64)
        buf[o:o + n] = bytes(len(buf[o:o + n]))
        return bytes(buf), f"{n} bytes zeroed at {o}"
    if k == 3:
        o = rng.randrange(8, len(buf) - 4) & ~3
        v = rng.choice(HOSTILE)
        _u32(buf, o, v)
        return bytes(buf), f"u32 at {o} -> {v:#x}"
    try:
        return _structured(model, rng)
    except Exception as e:  # noqa: BLE001 - the object API rejected our edit: a plain flip instead
        o = rng.randrange(len(buf))
        buf[o] ^= 0x10
        return bytes(buf), f"bit flip at {o} (structured edit failed: {type(e).__name__})"


def judge(mutant: bytes, inputs: np.ndarray, work: Path, what: str = "") -> Verdict:
    """What tinyfed does with ``mutant`` (see the module docstring)."""
    from tinyfed_toolchain.facts.errors import TinyfedError
    from tinyfed_toolchain.verify import verify

    try:
        res = verify(mutant, inputs, work)
    except TinyfedError as e:  # the CLI prints these as "tinyfed: error: <line>" with their exit code
        text = str(e)
        kind = "refused" if text and "\n" not in text else "crash"
        return Verdict(kind, what, f"{type(e).__name__}: {text}")
    except Exception as e:  # noqa: BLE001 - anything else would be a traceback
        return Verdict("crash", what, f"{type(e).__name__}: {e}")
    if res.mismatches:
        return Verdict("wrong", what, f"{res.mismatches} of {res.total} samples differ")
    return Verdict("accepted", what, f"{res.total} samples equal")


def campaign(models: dict[str, tuple[bytes, np.ndarray]], n: int, seed: int, work: Path,
             progress: Callable[[int, Verdict], None] | None = None) -> list[Verdict]:
    """``n`` seeded mutants spread over ``models`` (name -> (tflite, int8 inputs))."""
    rng = random.Random(seed)
    names = sorted(models)
    out: list[Verdict] = []
    for i in range(n):
        name = names[i % len(names)]
        model, x = models[name]
        mutant, what = mutate(model, rng)
        v = judge(mutant, x, work, f"{name}: {what}")
        out.append(v)
        if progress:
            progress(i, v)
    return out
