"""The training memory plan: one byte offset per float buffer of the tail, in a work area
that shares its storage with the int8 inference arena (see :mod:`.plan`'s docstring for
the timeline and what is kept from forward to backward)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..compile.plan import Plan, align_up, first_fit
from ..facts.c_headers import TYPE_SIZES, train_flag
from .layers import IDENTITY_OPS, TRAINABLE_OPS, WeightLayer, act_of, int_field, weight_layer_info

__all__ = ["ALIGN", "KIND_LABELS", "SAVED_KINDS", "MemoryPlan", "align", "plan_memory"]

ALIGN = 16


@dataclass
class _Buf:
    name: str
    kind: str
    size: int
    spans: list[tuple[int, int]]
    fixed: int | None = None
    offset: int = 0

    def overlaps(self, other: _Buf) -> bool:
        return any(a0 <= b1 and b0 <= a1 for a0, a1 in self.spans for b0, b1 in other.spans)

    def live_at(self, step: int) -> bool:
        return any(a <= step <= b for a, b in self.spans)


# Buffer kinds, as reported.
KIND_LABELS = {
    "activation": "forward activations (float)",
    "saved": "activations saved for backward",
    "mask": "activation masks (1 bit/elem)",
    "argmax": "max-pool routes (window index)",
    "lora_h": "LoRA h saved for backward",
    "lora_scratch": "LoRA h / dh scratch",
    "gradient": "activation gradients",
    "row": "filter row scratch",
    "boundary": "int8 boundary (arena, step 0)",
}
SAVED_KINDS = ("saved", "mask", "argmax", "lora_h")


@dataclass
class MemoryPlan:
    """Training SRAM, planned at generation time (bytes)."""

    arena_bytes: int  # int8 inference arena (the model's plan)
    work_bytes: int  # float work area (placed, with reuse)
    region_bytes: int  # max(arena, work), shared
    param_bytes: int  # one float vector of n_params, 16-aligned
    has_momentum: bool
    steps: int
    buffers: list[_Buf]
    row_floats: int = 0
    row_off: int = 0

    @property
    def state_bytes(self) -> int:
        return self.param_bytes * (3 if self.has_momentum else 2)

    @property
    def mem_bytes(self) -> int:
        """The whole block the trainer needs (TFD_TRAIN_MEM_BYTES)."""
        return self.region_bytes + self.state_bytes

    def bytes_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {k: 0 for k in KIND_LABELS}
        for b in self.buffers:
            out[b.kind] += b.size
        return out

    @property
    def saved_bytes(self) -> int:
        """Bytes held from forward into backward (activations, masks, routes, LoRA h)."""
        return sum(b.size for b in self.buffers if b.kind in SAVED_KINDS)

    def live_bytes(self, step: int) -> dict[str, int]:
        out: dict[str, int] = {k: 0 for k in KIND_LABELS}
        for b in self.buffers:
            if b.kind != "boundary" and b.live_at(step):
                out[b.kind] += b.size
        return out

    def peak(self) -> tuple[int, dict[str, int]]:
        """(step, live bytes by kind) at the step with the most live float bytes."""
        best_step, best = 0, self.live_bytes(0)
        for s in range(self.steps):
            live = self.live_bytes(s)
            if sum(live.values()) > sum(best.values()):
                best_step, best = s, live
        return best_step, best

    def report(self) -> str:
        """Inference SRAM vs training SRAM, bytes by category."""
        step, live = self.peak()
        lines = [
            f"inference SRAM (int8 arena)        {self.arena_bytes:>9,} B",
            f"training SRAM (TFD_TRAIN_MEM_BYTES) {self.mem_bytes:>8,} B"
            + (f"  (x{self.mem_bytes / self.arena_bytes:.1f})" if self.arena_bytes else ""),
            f"  shared region = max(arena, float work) {self.region_bytes:>7,} B",
            f"    float work area (placed)        {self.work_bytes:>9,} B; live at its peak (step {step}):",
        ]
        for k, v in live.items():
            if v:
                lines.append(f"      {KIND_LABELS[k]:<34} {v:>7,} B")
        lines.append(f"    saved from forward to backward  {self.saved_bytes:>9,} B")
        lines.append(f"  parameters                        {self.param_bytes:>9,} B")
        lines.append(f"  gradients                         {self.param_bytes:>9,} B")
        if self.has_momentum:
            lines.append(f"  momentum                          {self.param_bytes:>9,} B")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        step, live = self.peak()
        return {
            "arena_bytes": self.arena_bytes,
            "work_bytes": self.work_bytes,
            "region_bytes": self.region_bytes,
            "param_bytes": self.param_bytes,
            "state_bytes": self.state_bytes,
            "mem_bytes": self.mem_bytes,
            "saved_bytes": self.saved_bytes,
            "bytes_by_kind": self.bytes_by_kind(),
            "peak_step": step,
            "peak_live_by_kind": live,
        }


def align(n: int) -> int:
    """``n`` rounded up to the training memory's alignment (:data:`ALIGN`)."""
    return align_up(n, ALIGN)


def _place(bufs: list[_Buf]) -> int:
    """Greedy placement (fixed buffers first, then largest first, lowest free offset)."""
    placed: list[_Buf] = [b for b in bufs if b.fixed is not None]
    for b in placed:
        b.offset = int(b.fixed)  # type: ignore[arg-type]
    rest = sorted((b for b in bufs if b.fixed is None),
                  key=lambda b: (-b.size, min(s for s, _ in b.spans), b.name))
    for buf in rest:
        buf.offset = first_fit(buf.size, [(p.offset, p.size) for p in placed if p.overlaps(buf)], ALIGN)
        placed.append(buf)
    return max((align(b.offset + b.size) for b in bufs if b.fixed is None), default=0)


@dataclass
class _Timeline:
    """The tail on the training timeline (module docstring): ``dequantize (0) | forward of
    tail layer i (1+i) | loss (T+1) | backward of tail layer i (2T+1-i)``."""

    plan: Plan
    first: int
    end: int

    @property
    def T(self) -> int:  # noqa: N802  (the docstring's T)
        return self.end - self.first

    def fwd(self, i: int) -> int:
        return 1 + i

    @property
    def loss(self) -> int:
        return self.T + 1

    def bwd(self, i: int) -> int:
        return 2 * self.T + 1 - i

    @property
    def steps(self) -> int:
        return 2 * self.T + 2

    def op(self, i: int) -> str:
        return self.plan.layers[self.first + i].op

    @property
    def act_tensors(self) -> list[int]:
        """A[0..T]: the tail's input, then each tail layer's output."""
        layers = self.plan.layers
        return [layers[self.first + i].inputs[0] for i in range(self.T)] + [layers[self.end - 1].output]

    @property
    def elems(self) -> list[int]:
        return [self.plan.graph.tensor(t).num_elements for t in self.act_tensors]


def _spans(roots: list[int], touches: list[tuple[int, int]]) -> dict[int, list[int]]:
    """Live span [first step, last step] of every storage root, from (index, step) touches."""
    span: dict[int, list[int]] = {}
    for i, step in touches:
        s = span.setdefault(roots[i], [step, step])
        s[0], s[1] = min(s[0], step), max(s[1], step)
    return span


def _activation_buffers(tl: _Timeline, keep_input: set[int],
                        per: list[dict[str, int]]) -> tuple[list[int], dict[int, list[int]], dict[int, _Buf]]:
    """A[0..T]: identity ops share storage; a layer's input stays live until its backward
    when it is kept (weight / LoRA gradients)."""
    T, elems = tl.T, tl.elems
    root = list(range(T + 1))
    for i in range(T):
        if tl.op(i) in IDENTITY_OPS:
            root[i + 1] = root[i]
            per[i]["flags"] |= train_flag("ALIAS")
    touches = [(0, 0)] + [(k, tl.fwd(i)) for i in range(T) for k in (i, i + 1)] + [(T, tl.loss)]
    for i in range(T):
        if tl.first + i in keep_input:
            touches.append((i, tl.bwd(i)))
            per[i]["flags"] |= train_flag("KEEP_INPUT")
    span = _spans(root, touches)
    bufs = {r: _Buf(f"A{r}", "saved" if hi > tl.loss else "activation",
                    4 * max(elems[i] for i in range(T + 1) if root[i] == r), [(lo, hi)])
            for r, (lo, hi) in span.items()}
    return root, span, bufs


def _route_and_mask_buffers(tl: _Timeline, a_root: list[int], a_span: dict[int, list[int]],
                            per: list[dict[str, int]]) -> tuple[dict[int, _Buf], dict[int, _Buf]]:
    """MAX_POOL_2D routes (a window index per output: 1/4 of a float, cheaper than keeping
    the pool's input to recompute them) and activation-derivative bits, unless the
    layer's output is kept anyway (then the derivative is read from it)."""
    aux: dict[int, _Buf] = {}
    masks: dict[int, _Buf] = {}
    elems = tl.elems
    for i in range(tl.T):
        k = tl.first + i
        if tl.op(i) == "MAX_POOL_2D":
            taps = int_field(tl.plan, k, "filter_h", 1) * int_field(tl.plan, k, "filter_w", 1)
            wide = taps > 256
            per[i]["flags"] |= train_flag("ARGMAX") | (train_flag("ARGMAX_WIDE") if wide else 0)
            aux[i] = _Buf(f"R{i}", "argmax", elems[i + 1] * (2 if wide else 1), [(tl.fwd(i), tl.bwd(i))])
        if act_of(tl.plan, k) != "NONE":
            step = tl.bwd(i + 1) if i < tl.T - 1 else tl.loss
            lo, hi = a_span[a_root[i + 1]]
            if lo <= step <= hi:
                per[i]["flags"] |= train_flag("MASK_OUTPUT")  # the output is kept anyway: derive it
            else:
                per[i]["flags"] |= train_flag("MASK_BITS")
                masks[i] = _Buf(f"M{i}", "mask", (elems[i + 1] + 7) // 8, [(tl.fwd(i), step)])
    return aux, masks


def _gradient_buffers(tl: _Timeline, per: list[dict[str, int]]) -> tuple[list[int], dict[int, _Buf]]:
    """G[1..T] (G[i] = dL/dA[i]); identity ops and RELU/RELU6 pass dz through in place."""
    T, elems = tl.T, tl.elems
    root = list(range(T + 1))
    for i in range(T - 1, 0, -1):
        if tl.op(i) in IDENTITY_OPS or tl.op(i) in ("RELU", "RELU6"):
            root[i] = root[i + 1]
    touches = [(T, tl.loss)]
    for i in range(T - 1, -1, -1):
        touches.append((i + 1, tl.bwd(i)))  # dz of layer i
        if i >= 1:
            touches.append((i, tl.bwd(i)))  # dx of layer i
            per[i]["flags"] |= train_flag("NEED_DX")
    span = _spans(root, touches)
    bufs = {r: _Buf(f"G{r}", "gradient", 4 * max(elems[i] for i in range(1, T + 1) if root[i] == r), [(lo, hi)])
            for r, (lo, hi) in span.items()}
    return root, bufs


def _row_and_lora_buffers(tl: _Timeline, wl: Mapping[int, WeightLayer], lora: Mapping[int, int], store_h: bool,
                          per: list[dict[str, int]]) -> tuple[_Buf | None, dict[int, tuple[_Buf, _Buf]]]:
    """The filter-row scratch (one row of the widest trained filter) and LoRA's h / dh."""
    row_floats = 0
    row_spans: list[tuple[int, int]] = []
    lora_bufs: dict[int, tuple[_Buf, _Buf]] = {}
    for i in range(tl.T):
        k = tl.first + i
        if tl.op(i) not in TRAINABLE_OPS:
            continue
        w = wl[k]
        row_floats = max(row_floats, w.row_len)
        row_spans.append((tl.fwd(i), tl.fwd(i)))
        if i >= 1:
            row_spans.append((tl.bwd(i), tl.bwd(i)))
        if k in lora:
            size = 4 * (tl.elems[i] // w.depth) * int(lora[k])
            if store_h:
                h = _Buf(f"H{i}", "lora_h", size, [(tl.fwd(i), tl.bwd(i))])
                per[i]["flags"] |= train_flag("LORA_STORE_H")
            else:
                h = _Buf(f"H{i}", "lora_scratch", size, [(tl.fwd(i), tl.fwd(i)), (tl.bwd(i), tl.bwd(i))])
            lora_bufs[i] = (h, _Buf(f"D{i}", "lora_scratch", size, [(tl.bwd(i), tl.bwd(i))]))
    return (_Buf("ROW", "row", 4 * row_floats, row_spans) if row_floats else None), lora_bufs


def plan_memory(
    plan: Plan,
    first: int,
    end: int,
    keep_input: set[int],
    lora: Mapping[int, int],
    store_h: bool,
    has_momentum: bool,
    n_params: int,
    wl: Mapping[int, WeightLayer] | None = None,
) -> tuple[MemoryPlan, list[dict[str, int]]]:
    """Lifetimes and offsets of every float buffer of the tail (see the module docstring).

    Returns the memory plan and, per tail layer, its flags and offsets.  ``wl``:
    weight-layer info by layer (:func:`weight_layer_info`), computed if absent.
    """
    wl = wl if wl is not None else weight_layer_info(plan)
    tl = _Timeline(plan, first, end)
    per: list[dict[str, int]] = [{"flags": 0} for _ in range(tl.T)]
    a_root, a_span, a_buf = _activation_buffers(tl, keep_input, per)
    aux, masks = _route_and_mask_buffers(tl, a_root, a_span, per)
    g_root, g_buf = _gradient_buffers(tl, per)
    row_buf, lora_bufs = _row_and_lora_buffers(tl, wl, lora, store_h, per)
    bufs: list[_Buf] = [*a_buf.values(), *aux.values(), *masks.values(), *g_buf.values()]
    for h, dh in lora_bufs.values():
        bufs += [h, dh]
    if row_buf is not None:
        bufs.append(row_buf)
    # the int8 boundary tensor is read (dequantized) at step 0 from its arena slot
    bt = plan.graph.tensor(tl.act_tensors[0])
    bufs.append(_Buf("B", "boundary", bt.num_elements * TYPE_SIZES[bt.dtype], [(0, 0)],
                     fixed=plan.arena_offsets[tl.act_tensors[0]]))

    work = _place(bufs)
    for i, d in enumerate(per):
        d["in_off"] = a_buf[a_root[i]].offset
        d["out_off"] = a_buf[a_root[i + 1]].offset
        d["gout_off"] = g_buf[g_root[i + 1]].offset
        d["gin_off"] = g_buf[g_root[i]].offset if i >= 1 else 0
        d["aux_off"] = aux[i].offset if i in aux else 0
        d["mask_off"] = masks[i].offset if i in masks else 0
        if i in lora_bufs:
            d["h_off"], d["dh_off"] = lora_bufs[i][0].offset, lora_bufs[i][1].offset
    mem = MemoryPlan(
        arena_bytes=plan.arena_bytes,
        work_bytes=work,
        region_bytes=align(max(work, plan.arena_bytes)),
        param_bytes=align(4 * n_params),
        has_momentum=has_momentum,
        steps=tl.steps,
        buffers=bufs,
        row_floats=row_buf.size // 4 if row_buf is not None else 0,
        row_off=row_buf.offset if row_buf is not None else 0,
    )
    return mem, per
