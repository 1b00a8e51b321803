"""Model compilation: an int8 ``.tflite`` -> planned, emitted C tables.

Read the flatbuffer (:mod:`.tflite_reader`), drop the shape arithmetic a
dynamic batch leaves (:mod:`.shape_ops`), lower each op to a C op id and its
precomputed parameters (:mod:`.ops`, arithmetic in :mod:`.quant_math`), plan
the static arena (:mod:`.plan`) and emit the tables (:mod:`.emit_c`).  The
tflite-micro runtime, the golden reference, is wrapped in :mod:`.tflm`.
"""
