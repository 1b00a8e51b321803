"""Lower a graph and compute its static memory plan (arena offsets).

The plan is computed once, at generation time: every non-constant tensor gets
an offset in one arena.  Tensors whose lifetimes (first write .. last read, in
layer order) overlap never share bytes; RESHAPE outputs alias their input.
Placement is greedy by size (largest first, lowest free offset), like TFLM's
greedy planner, with 16-byte alignment.  A layer that asks for scratch memory
(``Lowered.scratch_bytes``: the optimized kernels' im2col columns) gets a
buffer live during that layer only; its offset and size go into the layer's
parameters (``scratch_offset``, ``scratch_bytes``).  Optional scratch
(``Lowered.scratch_optional``: ADD/SUB's rescale tables, the kernel runs
without them) is kept only where it does not make the arena larger.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Iterable

from ..facts.c_headers import TYPE_SIZES
from .ops import Lowered, lower_op
from .shape_ops import drop_shape_arithmetic
from .tflite_reader import Graph, ModelError, UnsupportedOpError

ALIGN = 16

__all__ = ["Plan", "Buffer", "plan_model", "align_up", "first_fit", "ModelError", "UnsupportedOpError"]


@dataclass
class Buffer:
    root: int  # tensor index that owns the storage
    size: int
    first: int  # first layer that writes it (-1 = graph input)
    last: int  # last layer that reads it (n_layers = graph output)
    offset: int = 0


@dataclass
class Plan:
    graph: Graph
    layers: list[Lowered]
    used_tensors: list[int]  # graph tensor indices kept, in emission order
    arena_offsets: dict[int, int]  # graph tensor index → arena offset (non-constant tensors)
    arena_bytes: int
    buffers: list[Buffer] = field(default_factory=list)
    model_hash: bytes = b""

    @property
    def const_bytes(self) -> int:
        total = 0
        for i in self.used_tensors:
            t = self.graph.tensor(i)
            if t.data is not None:
                total += t.num_elements * TYPE_SIZES.get(t.dtype, 4)
        return total


def align_up(n: int, align: int = ALIGN) -> int:
    """``n`` rounded up to a multiple of ``align``."""
    return (n + align - 1) // align * align


def first_fit(size: int, taken: Iterable[tuple[int, int]], align: int = ALIGN) -> int:
    """Lowest offset (0, or just past a taken range rounded up to ``align``)
    where ``size`` bytes fit beside the ``taken`` ``(offset, size)`` ranges."""
    offset = 0
    for start, length in sorted(taken, key=lambda r: r[0]):
        if offset + size <= start:
            break
        offset = max(offset, align_up(start + length, align))
    return offset


def _place(buffers: list[Buffer]) -> tuple[list[Buffer], int]:
    """First-fit placement, largest buffers first: (the placed copies, arena bytes)."""
    placed: list[Buffer] = []
    for b in sorted(buffers, key=lambda b: (-b.size, b.first, b.root)):
        live = [(p.offset, p.size) for p in placed if not (p.last < b.first or b.last < p.first)]
        placed.append(replace(b, offset=first_fit(b.size, live)))
    return placed, max((align_up(b.offset + b.size) for b in placed), default=0)


def plan_model(graph: Graph, tflite_bytes: bytes) -> Plan:
    """Lower every op and place every activation tensor in the arena (after dropping the
    shape arithmetic of a dynamic batch: shape_ops.py)."""
    graph = drop_shape_arithmetic(graph)
    layers = [lower_op(graph, op) for op in graph.ops]
    n_layers = len(layers)

    for t_index in graph.inputs + graph.outputs:
        t = graph.tensor(t_index)
        if t.dtype not in TYPE_SIZES:
            raise UnsupportedOpError(f"unsupported model {t.dtype} input/output tensor {t.name!r}")
        if t.data is not None:
            raise ModelError(f"model input/output tensor {t.name!r} is a constant")

    # Union-find for aliases (RESHAPE output shares its input's storage).
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    for layer in layers:
        if layer.alias_input is not None:
            parent[find(layer.output)] = find(layer.alias_input)

    used: list[int] = []
    seen: set[int] = set()

    def use(i: int) -> None:
        if i >= 0 and i not in seen:
            seen.add(i)
            used.append(i)

    for i in graph.inputs:
        use(i)
    for layer in layers:
        for i in layer.inputs:
            use(i)
        use(layer.output)
    for i in graph.outputs:
        use(i)

    lifetimes: dict[int, list[int]] = {}
    size: dict[int, int] = {}

    def touch(t_index: int, when: int) -> None:
        t = graph.tensor(t_index)
        if t.data is not None:
            return
        if t.dtype not in TYPE_SIZES:
            raise UnsupportedOpError(f"unsupported tensor type {t.dtype} for tensor {t.name!r}")
        r = find(t_index)
        span = lifetimes.setdefault(r, [when, when])
        span[0] = min(span[0], when)
        span[1] = max(span[1], when)
        size[r] = max(size.get(r, 0), t.num_elements * TYPE_SIZES[t.dtype])

    for i in graph.inputs:
        touch(i, -1)
    for k, layer in enumerate(layers):
        for i in layer.inputs:
            if i >= 0:
                touch(i, k)
        touch(layer.output, k)
    for i in graph.outputs:
        touch(i, n_layers)

    tensors = [Buffer(root=r, size=size[r], first=s[0], last=s[1]) for r, s in lifetimes.items()]
    scratch = {k: Buffer(root=-1 - k, size=layer.scratch_bytes, first=k, last=k)
               for k, layer in enumerate(layers) if layer.scratch_bytes > 0}
    placed, arena_bytes = _place(tensors + list(scratch.values()))
    # Optional scratch (the kernel runs without it, only slower: ADD/SUB's rescale
    # tables) is kept only where it fits beside what is live anyway: a layer's is
    # dropped when the arena would be smaller without it.
    for k in [k for k in scratch if layers[k].scratch_optional]:
        without = [b for kk, b in scratch.items() if kk != k]
        placed_without, arena_without = _place(tensors + without)
        if arena_without < arena_bytes:
            del scratch[k]
            layers[k] = replace(layers[k], scratch_bytes=0)
            placed, arena_bytes = placed_without, arena_without
    placed_at = {b.root: b.offset for b in placed}
    for k, buf in scratch.items():
        params = layers[k].params
        assert params is not None, f"layer {k} asks for scratch without a parameter struct"
        params.fields["scratch_offset"] = placed_at[buf.root]
        params.fields["scratch_bytes"] = buf.size
    root_offset = {b.root: b.offset for b in placed}
    offsets = {i: root_offset[find(i)] for i in used if graph.tensor(i).data is None}
    digest = hashlib.blake2b(tflite_bytes, digest_size=16).digest()
    return Plan(
        graph=graph,
        layers=layers,
        used_tensors=used,
        arena_offsets=offsets,
        arena_bytes=arena_bytes,
        buffers=placed,
        model_hash=digest,
    )
