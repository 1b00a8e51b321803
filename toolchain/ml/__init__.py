"""The ML pipeline: data -> teacher -> distilled student -> full-int8 ``.tflite``.

Datasets and partitions (:mod:`.data`), Keras architectures (:mod:`.models`),
training and distillation (:mod:`.distill`), post-training int8 quantization
(:mod:`.quantize`) and the whole pipeline (:mod:`.pipeline`).  The only
sub-package that imports TensorFlow / Keras.
"""
