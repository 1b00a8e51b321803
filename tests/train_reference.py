"""Test helpers for the training engine: build a small int8 model + plan + host
trainer, and an independent TensorFlow float reference of the same tail.

The reference is built from the .tflite graph itself (dequantized filters and
biases with the graph's own scales, TF's conv / pool ops with the op's padding
string), not from the training plan's tables, so that it checks them: the only
things taken from the plan are *which* values train and the layout of the
parameter vector (what the parameter vector means is the contract under test).
The boundary activation comes from the tflite-micro runtime (intermediate
tensors preserved), dequantized.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from tinyfed_toolchain.compile.emit_c import emit_model
from tinyfed_toolchain.training.emit import emit_train
from tinyfed_toolchain.compile.plan import Plan, plan_model
from tinyfed_toolchain.compile.tflite_reader import read_tflite
from tinyfed_toolchain.training.native_trainer import NativeTrainer
from tinyfed_toolchain.training.plan import Selection, TrainOptions, TrainPlan, build_train_plan

PADDING = {0: "SAME", 1: "VALID"}


def model_plan(tflite: bytes) -> Plan:
    return plan_model(read_tflite(tflite), tflite)


def make_trainer(tflite: bytes, sel: Selection, out_dir: Path, options: TrainOptions | None = None,
                 mplan: Plan | None = None) -> tuple[TrainPlan, NativeTrainer]:
    """Emit model + plan into ``out_dir`` and build the host trainer."""
    mp = mplan or model_plan(tflite)
    emit_model(mp, out_dir)
    tp = build_train_plan(mp, sel, options)
    emit_train(tp, out_dir)
    return tp, NativeTrainer(out_dir)


def tflm_tensor(tflite: bytes, x: np.ndarray, tensor_index: int) -> np.ndarray:
    """Tensor ``tensor_index`` (graph index) after running each sample through tflite-micro."""
    from tinyfed_toolchain.compile.tflm import _interpreter

    it = _interpreter(tflite, preserve_all=True)
    d = it.get_input_details(0)
    out = []
    for s in range(x.shape[0]):
        it.set_input(np.asarray(x[s], dtype=d["dtype"]).reshape(d["shape"]), 0)
        it.invoke()
        t = it.GetTensor(tensor_index, 0)
        if isinstance(t, dict):  # {'dtype', 'shape', 'tensor_data'}
            t = np.asarray(t["tensor_data"]).reshape(t["shape"])
        out.append(np.array(t, copy=True))
    return np.stack(out)


def _opt(op: Any, name: str, default: int) -> int:
    return int(getattr(op.options, name, default)) if op.options is not None else default


def _per_channel(scales: np.ndarray, n: int) -> np.ndarray:
    s = np.asarray(scales, dtype=np.float32).reshape(-1)
    return np.full(n, s[0], np.float32) if s.size == 1 else s


class TFReference:
    """TensorFlow float32 forward/backward of the plan's tail on the dequantized model."""

    def __init__(self, tflite: bytes, tp: TrainPlan) -> None:
        self.tflite = tflite
        self.tp = tp
        self.graph = tp.model_plan.graph

    def boundary(self, x: np.ndarray) -> np.ndarray:
        g = self.graph
        bt = g.tensor(self.tp.boundary_tensor)
        q = tflm_tensor(self.tflite, x, self.tp.boundary_tensor)
        return ((q.astype(np.int32) - bt.zero_point).astype(np.float32) * np.float32(bt.scale)).reshape(
            (x.shape[0], *bt.shape[1:]))

    def _filter(self, k: int) -> tuple[str, np.ndarray]:
        """Channel-major real rows [OC, row_len] of layer k's filter and the op."""
        g = self.graph
        op = g.ops[k]
        w = g.tensor(op.inputs[1])
        data = np.asarray(w.data).astype(np.float32)
        if op.name == "FULLY_CONNECTED":
            s = _per_channel(w.scales, data.shape[0])
            return op.name, data * s[:, None]
        if op.name == "CONV_2D":
            s = _per_channel(w.scales, data.shape[0])
            return op.name, (data * s[:, None, None, None]).reshape(data.shape[0], -1)
        s = _per_channel(w.scales, data.shape[3])  # DEPTHWISE [1, kh, kw, oc]
        real = data * s[None, None, None, :]
        return op.name, real[0].reshape(-1, data.shape[3]).T.copy()

    def run(self, x: np.ndarray, y: np.ndarray, params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(mean cross-entropy, d loss / d params, logits) for int8 inputs x and labels y."""
        import tensorflow as tf

        g = self.graph
        tp = self.tp
        n = x.shape[0]
        a0 = self.boundary(x)
        quantized = tp.options.domain == "quantized"
        seg_of = {(s.layer, s.kind): s for s in tp.segments}
        p = tf.Variable(np.asarray(params, dtype=np.float32))

        def seg_values(s: Any) -> Any:
            return tf.reshape(p[s.offset : s.offset + s.count], (s.rows, s.row_len))

        with tf.GradientTape() as tape:
            h = tf.constant(a0)
            for tl in tp.tail:
                k = tl.layer
                op = g.ops[k]
                out_t = g.tensor(op.outputs[0])
                out_shape = [n, *out_t.shape[1:]]
                if op.name in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
                    _, rows0 = self._filter(k)
                    oc = rows0.shape[0]
                    rows: Any = tf.constant(rows0)
                    sw = seg_of.get((k, "weight"))
                    if sw is not None:
                        upd = seg_values(sw)
                        if quantized:
                            w_scale = _per_channel(g.tensor(op.inputs[1]).scales, oc)
                            upd = upd * tf.constant(w_scale[np.asarray(sw.channels or range(oc))][:, None])
                        chans = np.asarray(sw.channels if sw.channels is not None else range(oc))
                        rows = tf.tensor_scatter_nd_update(rows, chans.reshape(-1, 1), upd)
                    bias: Any = tf.zeros(oc)
                    if len(op.inputs) > 2 and op.inputs[2] >= 0:
                        bt = g.tensor(op.inputs[2])
                        bs = _per_channel(bt.scales, oc)
                        bias = tf.constant(np.asarray(bt.data).astype(np.float32) * bs)
                        sb = seg_of.get((k, "bias"))
                        if sb is not None:
                            bias = tf.reshape(seg_values(sb), [-1])
                            if quantized:
                                bias = bias * tf.constant(bs)
                    x_in = h
                    if op.name == "FULLY_CONNECTED":
                        depth = rows0.shape[1]
                        x2 = tf.reshape(h, [-1, depth])
                        z = tf.matmul(x2, rows, transpose_b=True) + bias
                    elif op.name == "CONV_2D":
                        wt = g.tensor(op.inputs[1])
                        filt = tf.transpose(tf.reshape(rows, wt.shape), (1, 2, 3, 0))
                        z = tf.nn.conv2d(h, filt, strides=[1, _opt(op, "strideH", 1), _opt(op, "strideW", 1), 1],
                                         padding=PADDING[_opt(op, "padding", 0)],
                                         dilations=[1, _opt(op, "dilationHFactor", 1), _opt(op, "dilationWFactor", 1), 1])
                        z = z + bias
                    else:
                        wt = g.tensor(op.inputs[1])
                        _, kh, kw, _ = wt.shape
                        ic = h.shape[-1]
                        filt = tf.reshape(tf.transpose(rows), (kh, kw, ic, oc // ic))
                        z = tf.nn.depthwise_conv2d(h, filt, strides=[1, _opt(op, "strideH", 1), _opt(op, "strideW", 1), 1],
                                                   padding=PADDING[_opt(op, "padding", 0)],
                                                   dilations=[_opt(op, "dilationHFactor", 1), _opt(op, "dilationWFactor", 1)])
                        z = z + bias
                    sa, sbm = seg_of.get((k, "lora_a")), seg_of.get((k, "lora_b"))
                    if sa is not None and sbm is not None:
                        depth = sa.rows
                        x2 = tf.reshape(x_in, [-1, depth])
                        delta = tf.matmul(tf.matmul(x2, seg_values(sa)), seg_values(sbm)) * tl.lora_scale
                        z = z + tf.reshape(delta, tf.shape(z))
                    h = z
                elif op.name == "MAX_POOL_2D":
                    h = tf.nn.max_pool2d(h, [_opt(op, "filterHeight", 1), _opt(op, "filterWidth", 1)],
                                         [_opt(op, "strideH", 1), _opt(op, "strideW", 1)],
                                         PADDING[_opt(op, "padding", 0)])
                elif op.name == "AVERAGE_POOL_2D":
                    h = tf.nn.avg_pool2d(h, [_opt(op, "filterHeight", 1), _opt(op, "filterWidth", 1)],
                                         [_opt(op, "strideH", 1), _opt(op, "strideW", 1)],
                                         PADDING[_opt(op, "padding", 0)])
                elif op.name == "MEAN":
                    axes = [int(v) for v in np.asarray(g.tensor(op.inputs[1]).data).reshape(-1)]
                    h = tf.reduce_mean(h, axis=axes, keepdims=True)
                elif op.name == "RELU":
                    h = tf.nn.relu(h)
                elif op.name == "RELU6":
                    h = tf.nn.relu6(h)
                elif op.name not in ("RESHAPE", "QUANTIZE", "DEQUANTIZE"):
                    raise NotImplementedError(op.name)
                if op.name in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
                    act = tl.act
                    if act == "RELU":
                        h = tf.nn.relu(h)
                    elif act == "RELU6":
                        h = tf.nn.relu6(h)
                    elif act == "RELU_N1_TO_1":
                        h = tf.clip_by_value(h, -1.0, 1.0)
                h = tf.reshape(h, out_shape)
            logits = tf.reshape(h, [n, -1])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.constant(np.asarray(y, dtype=np.int64)), logits=logits))
        grad = tape.gradient(loss, p)
        return float(loss.numpy()), np.asarray(grad.numpy(), dtype=np.float32), logits.numpy()


def assert_grads_close(got: np.ndarray, ref: np.ndarray, tp: TrainPlan, rtol: float = 1e-4,
                       atol_rel: float = 1e-5) -> None:
    """Per segment: |got - ref| <= atol + rtol |ref| with atol = atol_rel x max|ref| of the
    segment (1e-5 absolute when the segment's gradients are O(1)); every segment
    must carry a non-zero gradient (else the comparison would be vacuous)."""
    for s in tp.segments:
        g = got[s.offset : s.offset + s.count]
        r = ref[s.offset : s.offset + s.count]
        scale = float(np.max(np.abs(r)))
        assert scale > 0.0, f"segment {s.kind} of layer {s.layer}: zero reference gradient"
        np.testing.assert_allclose(g, r, rtol=rtol, atol=atol_rel * max(scale, 1e-30),
                                   err_msg=f"segment {s.kind} of layer {s.layer}")


class DigitsStudent:
    """A small int8 student for sklearn digits, built without the full pipeline:
    the default image student (conv, depthwise-separable block, max pools,
    flatten, dense 32, dense 10), trained on the first ``n_pretrain`` samples of
    the training split, so the rest can serve as device shards it has not seen.

    The .tflite is cached under build/test-cache, keyed by the student code and
    the arguments (training it takes ~8 s)."""

    def __init__(self, seed: int = 0, n_pretrain: int = 400, epochs: int = 8) -> None:
        import hashlib
        import inspect

        from tinyfed_toolchain.ml import models
        from tinyfed_toolchain.ml.quantize import quantize_inputs
        from tinyfed_toolchain.ml.data import load_dataset
        from tinyfed_toolchain.facts.paths import BUILD

        ds = load_dataset("digits", seed=seed)
        key = hashlib.blake2b((inspect.getsource(models) + inspect.getsource(DigitsStudent)
                               + f"{seed}/{n_pretrain}/{epochs}").encode(), digest_size=8).hexdigest()
        cache = BUILD / "test-cache" / f"digits-student-{key}.tflite"
        if cache.exists():
            self.tflite = cache.read_bytes()
        else:
            self.tflite = self._train(ds, seed, n_pretrain, epochs)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(self.tflite)
            os.replace(tmp, cache)
        g = read_tflite(self.tflite)
        t = g.tensor(g.inputs[0])
        self.dataset = ds
        self.x_train = quantize_inputs(ds.x_train, t.scale, t.zero_point)
        self.y_train = ds.y_train.astype(np.uint8)
        self.x_test = quantize_inputs(ds.x_test, t.scale, t.zero_point)
        self.y_test = ds.y_test.astype(np.uint8)
        self.n_pretrain = n_pretrain

    @staticmethod
    def _train(ds: Any, seed: int, n_pretrain: int, epochs: int) -> bytes:
        import keras

        from quantized_models import to_int8_tflite
        from tinyfed_toolchain.ml.models import build_student, with_batch_size

        keras.utils.set_random_seed(seed)
        m = build_student(ds.input_shape, ds.num_classes)
        m.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(ds.x_train[:n_pretrain], ds.y_train[:n_pretrain], epochs=epochs, batch_size=32, verbose=0)
        rep = ds.x_train[:n_pretrain]
        return to_int8_tflite(with_batch_size(m, 1), [ds.input_shape],
                              rep_fn=lambda r: [rep[int(r.integers(len(rep)))][None]])

    def shard(self, n: int = 400, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Samples the student was not trained on (a device's private shard)."""
        s = slice(self.n_pretrain + start, self.n_pretrain + start + n)
        return self.x_train[s], self.y_train[s]
