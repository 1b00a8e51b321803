"""Emit a training plan as C data tables, next to the model's (ARCHITECTURE.md rules 1, 2).

Output (into a git-ignored build folder, usually the model's ``model_c/``):

- ``train_data.h`` — ABI check, ``TFD_TRAIN_MEM_BYTES`` and the other sizes as
  ``#define``s, ``extern const tfd_train_plan_t tfd_train_plan;``
- ``train_data.c`` — initial parameters, per-layer scales and channel maps, the
  tail and segment tables and the plan, plus ``_Static_assert``s tying the sizes
  to each other and to the model tables it was planned for.
- ``train_info.json`` — the plan (parameter layout, memory by category).

No logic and no timestamp: identical inputs give identical bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..compile.emit_c import banner, c_array, c_float, c_string, write_if_changed
from ..compile.plan import Plan
from ..facts.c_headers import op_ids, train_abi, train_act_id, train_seg_kind_id
from .plan import TrainPlan

__all__ = ["emit_train"]


def _remap(plan: Plan) -> dict[int, int]:
    """Graph tensor index → index in the emitted tensor table (as emit_c does)."""
    return {t: k for k, t in enumerate(plan.used_tensors)}


def _ptr(name: str | None) -> str:
    return name if name is not None else "NULL"


def emit_train(tp: TrainPlan, out_dir: Path, *, name: str = "model") -> dict[str, Any]:
    """Write train_data.{c,h} and train_info.json into ``out_dir``; return the info dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mp = tp.model_plan
    remap = _remap(mp)
    mem = tp.memory
    abi = train_abi()
    arrays: list[str] = []

    def arr(nm: str, ctype: str, values: np.ndarray | None) -> str | None:
        if values is None:
            return None
        arrays.append(c_array(nm, ctype, np.asarray(values)))
        return nm

    if tp.n_params < 1:
        raise ValueError("a training plan without parameters cannot be emitted")
    arrays.append(c_array("init_params", "float", tp.init_params))

    seg_rows: list[str] = []
    for si, s in enumerate(tp.segments):
        q = arr(f"seg{si}_qscale", "float", s.qscale)
        seg_rows.append(
            f"    {{ .offset = {s.offset}, .rows = {s.rows}, .row_len = {s.row_len}, .layer = {s.layer},"
            f" .kind = {train_seg_kind_id(s.kind)} /* {s.kind} */, .decay = {int(s.decay)}, .qscale = {_ptr(q)} }},"
        )

    tail_rows: list[str] = []
    for ti, t in enumerate(tp.tail):
        ws = arr(f"l{t.layer}_w_scale", "float", t.w_scale)
        bs = arr(f"l{t.layer}_b_scale", "float", t.b_scale)
        wr = arr(f"l{t.layer}_w_rows", "int16_t", t.w_rows)
        tail_rows.append(
            "    {"
            f" .layer = {t.layer}, .op = {op_ids()[t.op]} /* {t.op} */, .act = {train_act_id(t.act)} /* {t.act} */,"
            f" .flags = 0x{t.flags:04x}u, .lora_rank = {t.lora_rank},"
            f" .seg_w = {t.seg_w}, .seg_b = {t.seg_b}, .seg_la = {t.seg_la}, .seg_lb = {t.seg_lb},"
            f" .lora_scale = {c_float(t.lora_scale)}, .w_scale = {_ptr(ws)}, .b_scale = {_ptr(bs)},"
            f" .w_rows = {_ptr(wr)}, .in_off = {t.in_off}u, .out_off = {t.out_off}u,"
            f" .mask_off = {t.mask_off}u, .aux_off = {t.aux_off}u, .gin_off = {t.gin_off}u, .gout_off = {t.gout_off}u,"
            f" .h_off = {t.h_off}u, .dh_off = {t.dh_off}u }}, /* tail {ti} */"
        )

    hash_bytes = ", ".join(f"0x{b:02x}" for b in mp.model_hash)
    scheme = c_string(tp.scheme)
    n_mom = 3 if mem.has_momentum else 2
    header = (
        banner(f"training tables for {name} ({tp.scheme})")
        + "#ifndef TFD_TRAIN_DATA_H\n#define TFD_TRAIN_DATA_H\n\n"
        + '#include "tfd/train.h"\n\n'
        + f"#if TFD_TRAIN_ABI != {abi}\n"
        + f'#error "training tables were generated for tinyfed training ABI {abi}: regenerate them"\n#endif\n\n'
        + f"#define TFD_TRAIN_SCHEME {scheme}\n"
        + f"#define TFD_TRAIN_N_PARAMS {tp.n_params}u\n"
        + f"#define TFD_TRAIN_N_LOGITS {tp.n_logits}u\n"
        + f"#define TFD_TRAIN_FIRST_LAYER {tp.first_layer}u\n"
        + "/* training SRAM, planned at generation time (see train_info.json for the categories) */\n"
        + f"#define TFD_TRAIN_WORK_BYTES {mem.work_bytes}u   /* float work area */\n"
        + f"#define TFD_TRAIN_REGION_BYTES {mem.region_bytes}u /* max(inference arena, work area) */\n"
        + f"#define TFD_TRAIN_PARAM_BYTES {mem.param_bytes}u  /* one float vector of n_params */\n"
        + f"#define TFD_TRAIN_STATE_BYTES {mem.state_bytes}u  /* params + grads{' + momentum' if mem.has_momentum else ''} */\n"
        + f"#define TFD_TRAIN_SAVED_BYTES {mem.saved_bytes}u  /* kept from forward to backward */\n"
        + f"#define TFD_TRAIN_MEM_BYTES {mem.mem_bytes}u\n\n"
        + "extern const tfd_train_plan_t tfd_train_plan;\n\n#endif /* TFD_TRAIN_DATA_H */\n"
    )
    source = (
        banner(f"training tables for {name} ({tp.scheme})")
        + '#include <stddef.h>\n#include <stdint.h>\n\n#include "model_data.h"\n#include "train_data.h"\n\n'
        + f"_Static_assert(TFD_MODEL_ARENA_BYTES == {mp.arena_bytes}u,\n"
        + '               "training tables were planned for another model: regenerate them");\n'
        + '_Static_assert(TFD_TRAIN_REGION_BYTES >= TFD_MODEL_ARENA_BYTES, "region must hold the inference arena");\n'
        + '_Static_assert(TFD_TRAIN_REGION_BYTES >= TFD_TRAIN_WORK_BYTES, "region must hold the float work area");\n'
        + '_Static_assert(TFD_TRAIN_REGION_BYTES % 16u == 0u && TFD_TRAIN_PARAM_BYTES % 16u == 0u,\n'
        + '               "training memory parts keep 16-byte alignment");\n'
        + '_Static_assert(TFD_TRAIN_PARAM_BYTES >= 4u * TFD_TRAIN_N_PARAMS, "parameter vector size");\n'
        + f'_Static_assert(TFD_TRAIN_STATE_BYTES == {n_mom}u * TFD_TRAIN_PARAM_BYTES, "optimizer state size");\n'
        + '_Static_assert(TFD_TRAIN_MEM_BYTES == TFD_TRAIN_REGION_BYTES + TFD_TRAIN_STATE_BYTES,\n'
        + '               "TFD_TRAIN_MEM_BYTES = region + parameters + gradients (+ momentum)");\n\n'
        + "".join(arrays)
        + '\n_Static_assert(sizeof init_params / sizeof init_params[0] == TFD_TRAIN_N_PARAMS, "init_params size");\n\n'
        + f"static const tfd_train_segment_t segments[{len(seg_rows)}] = {{\n" + "\n".join(seg_rows) + "\n};\n\n"
        + f"static const tfd_train_layer_t tail[{len(tail_rows)}] = {{\n" + "\n".join(tail_rows) + "\n};\n\n"
        + "const tfd_train_plan_t tfd_train_plan = {\n"
        + f"    .abi = {abi},\n"
        + f"    .model_hash = {{{hash_bytes}}},\n"
        + f"    .scheme = TFD_TRAIN_SCHEME,\n"
        + f"    .domain = {1 if tp.options.domain == 'quantized' else 0},\n"
        + f"    .qas = {int(tp.options.qas)},\n"
        + f"    .has_momentum = {int(mem.has_momentum)},\n"
        + f"    .first_layer = {tp.first_layer},\n"
        + f"    .n_tail = {len(tail_rows)},\n"
        + "    .tail = tail,\n"
        + f"    .n_segments = {len(seg_rows)},\n"
        + "    .segments = segments,\n"
        + "    .n_params = TFD_TRAIN_N_PARAMS,\n"
        + "    .init_params = init_params,\n"
        + f"    .boundary_tensor = {remap[tp.boundary_tensor]},\n"
        + "    .n_logits = TFD_TRAIN_N_LOGITS,\n"
        + f"    .row_off = {mem.row_off}u,\n"
        + f"    .row_floats = {mem.row_floats}u,\n"
        + "    .work_bytes = TFD_TRAIN_WORK_BYTES,\n"
        + "    .region_bytes = TFD_TRAIN_REGION_BYTES,\n"
        + "    .mem_bytes = TFD_TRAIN_MEM_BYTES,\n"
        + "};\n"
    )
    info = tp.to_json()
    info["model"] = name
    write_if_changed(out_dir / "train_data.h", header)
    write_if_changed(out_dir / "train_data.c", source)
    write_if_changed(out_dir / "train_info.json", json.dumps(info, indent=2) + "\n")
    return info
