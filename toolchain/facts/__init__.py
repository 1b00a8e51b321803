"""Shared facts: the one layer toolchain and host both stand on.

Where things are (:mod:`.paths`), the boards (:mod:`.boards`), what the C
headers define (:mod:`.c_headers`), the wire table (:mod:`.wire_table`),
which C sources each program compiles (:mod:`.manifests`), the training
options message (:mod:`.train_config`) and the error base (:mod:`.errors`).
Nothing here imports the rest of tinyfed, or anything heavy (no numpy, no
TensorFlow): it is safe to import from anywhere.
"""
