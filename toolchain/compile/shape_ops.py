"""Drop the shape arithmetic a dynamic batch leaves in a graph.

Keras 3 / TF 2.x convert ``Flatten`` / ``Reshape`` of a model whose batch is
dynamic (``shape_signature`` -1) into ``SHAPE -> STRIDED_SLICE -> PACK ->
RESHAPE``: the new shape is computed at run time from the input's shape.  In
the flatbuffer every tensor has a static shape (batch 1), RESHAPE's output
included, and tinyfed's RESHAPE takes its shape from that static output (the
shape operand is not read), so those int32 computations are dead.  This pass
removes every op that only feeds RESHAPE shape operands (directly or through
other such ops) and is one of SHAPE_ARITHMETIC on int32 tensors; anything else
stays and is lowered (or refused by name) as usual.
"""

from __future__ import annotations

from dataclasses import replace

from .tflite_reader import Graph

#: ops that compute shapes (int32 tensors) in converted Keras graphs
SHAPE_ARITHMETIC = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION", "GATHER", "SLICE", "CAST",
                              "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "MUL", "ADD", "SUB", "FLOOR_DIV", "REDUCE_PROD"})
_SHAPE_TYPES = frozenset({"INT32", "INT64"})
_RESHAPES = frozenset({"RESHAPE"})


def drop_shape_arithmetic(graph: Graph) -> Graph:
    """``graph`` without the ops that only compute RESHAPE shape operands."""
    consumers: dict[int, list[tuple[int, int]]] = {}
    for k, op in enumerate(graph.ops):
        for pos, t in enumerate(op.inputs):
            if t >= 0:
                consumers.setdefault(t, []).append((k, pos))
    outputs = set(graph.outputs)
    dead: set[int] = set()
    for k in range(len(graph.ops) - 1, -1, -1):  # consumers come later: decide them first
        op = graph.ops[k]
        if op.name not in SHAPE_ARITHMETIC or not op.outputs:
            continue
        if any(t in outputs or graph.tensor(t).dtype not in _SHAPE_TYPES for t in op.outputs):
            continue
        uses = [u for t in op.outputs for u in consumers.get(t, [])]
        if uses and all(j in dead or (graph.ops[j].name in _RESHAPES and pos == 1) for j, pos in uses):
            dead.add(k)
    if not dead:
        return graph
    ops = [op for k, op in enumerate(graph.ops) if k not in dead]
    # consumers by position in the new op list (op.index keeps the file's numbering for messages)
    kept: dict[int, list[int]] = {}
    for k, op in enumerate(ops):
        for t in op.inputs:
            if t >= 0:
                kept.setdefault(t, []).append(k)  # as read_tflite builds it
    return replace(graph, ops=ops, consumers=kept)


__all__ = ["drop_shape_arithmetic", "SHAPE_ARITHMETIC"]
