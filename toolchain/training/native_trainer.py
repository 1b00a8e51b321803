"""The training engine (firmware/src/train) compiled for the build machine, wrapped with ctypes.

The same C code as on the device — the int8 runtime for the frozen prefix, the
float tail with its backward kernels, the optimizer — built as a shared library
together with a model's ``model_data.c`` and a plan's ``train_data.c``
(``-std=c11 -Wall -Wextra -Werror``).  Used for host-side evaluation, centralised
fine-tuning, ``tinyfed simulate`` (one :class:`NativeTrainer` per virtual device;
each owns its memory block) and the gradient-parity tests.

Example
-------
>>> t = NativeTrainer(Path("build/model/model_c"))              # doctest: +SKIP
>>> stats = t.fit(TrainConfig(lr=0.05, epochs=2), x_int8, y)  # doctest: +SKIP
>>> correct, loss_sum, n = t.eval(x_int8, y)                  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..facts.errors import BuildStepError, InputError
from ..facts.manifests import train_lib_sources
from ..facts.paths import BUILD
from ..facts.train_config import SCHEDULES, TrainConfig
from ..image.native_cc import compile_native

__all__ = ["TrainStats", "TrainError", "NativeTrainer", "build_train_lib"]

LIB_FLAGS = ["-fPIC", "-fvisibility=hidden", "-shared"]  # compile_native adds -O2 and the warnings


@dataclass(frozen=True)
class TrainStats:
    samples: int
    steps: int
    correct: int
    loss_sum: float

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")


class TrainError(BuildStepError, RuntimeError):
    """The C engine returned an error status."""

    def __init__(self, what: str, status: int, text: str) -> None:
        super().__init__(f"{what}: {text} (status {status})")
        self.status = status


def build_train_lib(model_dir: Path, train_dir: Path | None = None, *, cc: str | None = None) -> Path:
    """Compile runtime + kernels + training engine + the model and plan tables
    into a shared library (cached per object: the engine, runtime and kernels see
    only firmware/include and are shared by every model and plan; see
    :func:`~tinyfed_toolchain.image.native_cc.compile_native`)."""
    model_dir = Path(model_dir).resolve()
    train_dir = Path(train_dir).resolve() if train_dir is not None else model_dir
    for f in (model_dir / "model_data.c", train_dir / "train_data.c"):
        if not f.is_file():
            raise InputError(f"{f} does not exist (emit the model / training plan first)")
    generic, glue = train_lib_sources()
    sources = [*generic, model_dir / "model_data.c", train_dir / "train_data.c", *glue]
    return compile_native(sources, [model_dir, train_dir], "libtfdtrain.so", extra_flags=LIB_FLAGS, cc=cc,
                          cache_dir=BUILD / "native-lib")


_LIBS: dict[Path, ctypes.CDLL] = {}

_u32 = ctypes.c_uint32
_f32 = ctypes.c_float
_vp = ctypes.c_void_p


def _load(path: Path) -> ctypes.CDLL:
    lib = _LIBS.get(path)
    if lib is not None:
        return lib
    lib = ctypes.CDLL(str(path))
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "th_trainer_size": (ctypes.c_size_t, []),
        "th_mem_bytes": (ctypes.c_size_t, []),
        "th_mem_bytes_computed": (ctypes.c_size_t, []),
        "th_n_logits": (_u32, []),
        "th_sample_bytes": (_u32, []),
        "th_init": (ctypes.c_int, [_vp, _vp, ctypes.c_size_t]),
        "th_n_params": (_u32, [_vp]),
        "th_get_params": (ctypes.c_int, [_vp, _vp, _u32]),
        "th_set_params": (ctypes.c_int, [_vp, _vp, _u32]),
        "th_fit": (ctypes.c_int, [_vp, _f32, _f32, _f32, _u32, _u32, _u32, _u32, _u32,
                                  _vp, _vp, _u32, _u32, _vp, _vp]),
        "th_eval": (ctypes.c_int, [_vp, _vp, _vp, _u32, _u32, _vp, _vp, _vp]),
        "th_predict": (ctypes.c_int, [_vp, _vp, _u32, _u32, _vp]),
        "th_gradient": (ctypes.c_int, [_vp, _vp, _vp, _u32, _u32, _vp, _vp]),
        "th_shuffle_index": (_u32, [_u32, _u32, _u32, _u32]),
        "th_lr_at": (_f32, [_f32, _u32, _u32, _u32]),
        "th_status_str": (ctypes.c_char_p, [ctypes.c_int]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    _LIBS[path] = lib
    return lib


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


class NativeTrainer:
    """One trainer (one virtual device) on the host build of the engine.

    Parameters
    ----------
    model_dir
        Folder with the emitted ``model_data.{c,h}``.
    train_dir
        Folder with the emitted ``train_data.{c,h}`` (default: ``model_dir``).
    """

    def __init__(self, model_dir: Path, train_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.train_dir = Path(train_dir) if train_dir is not None else self.model_dir
        self.lib_path = build_train_lib(self.model_dir, self.train_dir)
        self._lib = _load(self.lib_path)
        self.mem_bytes = int(self._lib.th_mem_bytes())
        if self.mem_bytes != int(self._lib.th_mem_bytes_computed()):
            raise TrainError("plan", 2, "TFD_TRAIN_MEM_BYTES disagrees with tfd_trainer_mem_bytes()")
        self._trainer = np.zeros(int(self._lib.th_trainer_size()) + 16, dtype=np.uint8)
        raw = np.zeros(self.mem_bytes + 64, dtype=np.uint8)
        start = (-_ptr(raw)) % 64
        self._raw = raw
        self._mem = raw[start : start + self.mem_bytes]
        self.n_logits = int(self._lib.th_n_logits())
        self.sample_bytes = int(self._lib.th_sample_bytes())
        self._check(self._lib.th_init(self._tp, _ptr(self._mem), self.mem_bytes), "tfd_trainer_init")
        self.n_params = int(self._lib.th_n_params(self._tp))
        info_path = self.train_dir / "train_info.json"
        self.info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}

    @property
    def _tp(self) -> int:
        return _ptr(self._trainer)

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise TrainError(what, status, self._lib.th_status_str(status).decode())

    def _x(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise InputError(f"inputs must be int8 (model-quantized), got {x.dtype}")
        n = x.shape[0]
        flat = np.ascontiguousarray(x.reshape(n, -1))
        if flat.shape[1] != self.sample_bytes:
            raise InputError(f"samples of {flat.shape[1]} bytes; the model input takes {self.sample_bytes}")
        return flat, n

    def _y(self, y: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y).reshape(-1)
        if y.shape[0] != n:
            raise InputError(f"{n} samples but {y.shape[0]} labels")
        if y.size and (y.min() < 0 or y.max() >= self.n_logits):
            raise InputError(f"labels must be in [0, {self.n_logits})")
        return np.ascontiguousarray(y, dtype=np.uint8)

    def params(self) -> np.ndarray:
        out = np.zeros(self.n_params, dtype=np.float32)
        self._check(self._lib.th_get_params(self._tp, _ptr(out), self.n_params), "params")
        return out

    def set_params(self, params: np.ndarray) -> None:
        """Replace the parameters (resets the optimizer state)."""
        p = np.ascontiguousarray(np.asarray(params, dtype=np.float32).reshape(-1))
        self._check(self._lib.th_set_params(self._tp, _ptr(p), p.size), "tfd_trainer_set_params")

    def fit(self, cfg: TrainConfig, x: np.ndarray, y: np.ndarray) -> TrainStats:
        xf, n = self._x(x)
        yy = self._y(y, n)
        out = np.zeros(4, dtype=np.uint32)
        loss = ctypes.c_float(0.0)
        sched = cfg.schedule_id
        self._check(
            self._lib.th_fit(self._tp, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.epochs, cfg.batch,
                             cfg.seed & 0xFFFFFFFF, sched, cfg.max_samples, _ptr(xf), _ptr(yy), n,
                             self.sample_bytes, _ptr(out), ctypes.addressof(loss)),
            "tfd_trainer_fit",
        )
        return TrainStats(int(out[0]), int(out[1]), int(out[2]), float(loss.value))

    def eval(self, x: np.ndarray, y: np.ndarray) -> tuple[int, float, int]:
        """(correct, summed cross-entropy, samples) with the current parameters."""
        xf, n = self._x(x)
        yy = self._y(y, n)
        samples, correct, loss = ctypes.c_uint32(0), ctypes.c_uint32(0), ctypes.c_float(0.0)
        self._check(self._lib.th_eval(self._tp, _ptr(xf), _ptr(yy), n, self.sample_bytes,
                                      ctypes.addressof(samples), ctypes.addressof(correct),
                                      ctypes.addressof(loss)), "tfd_trainer_eval")
        return int(correct.value), float(loss.value), int(samples.value)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float logits [n, n_logits] of the float tail with the current parameters."""
        xf, n = self._x(x)
        out = np.zeros((n, self.n_logits), dtype=np.float32)
        self._check(self._lib.th_predict(self._tp, _ptr(xf), n, self.sample_bytes, _ptr(out)), "tfd_trainer_predict")
        return out

    def gradient(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mean cross-entropy gradient over (x, y) w.r.t. the parameters as stored."""
        return self.gradient_and_loss(x, y)[0]

    def gradient_and_loss(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        xf, n = self._x(x)
        yy = self._y(y, n)
        g = np.zeros(self.n_params, dtype=np.float32)
        loss = ctypes.c_float(0.0)
        self._check(self._lib.th_gradient(self._tp, _ptr(xf), _ptr(yy), n, self.sample_bytes, _ptr(g),
                                          ctypes.addressof(loss)), "tfd_trainer_gradient")
        return g, float(loss.value)

    def shuffle_order(self, seed: int, epoch: int, n: int) -> np.ndarray:
        """The sample order of one epoch of :meth:`fit` (a permutation of range(n))."""
        return np.array([self._lib.th_shuffle_index(seed & 0xFFFFFFFF, epoch, n, i) for i in range(n)],
                        dtype=np.int64)

    def lr_at(self, lr: float, schedule: str, step: int, total: int) -> float:
        return float(self._lib.th_lr_at(lr, SCHEDULES[schedule], step, total))
