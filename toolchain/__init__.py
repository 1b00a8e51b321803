"""tinyfed toolchain: data → teacher → distilled student → int8 .tflite → emitted C."""

__version__ = "0.1.0"
