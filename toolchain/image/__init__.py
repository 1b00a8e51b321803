"""Image build: firmware images cross-compiled per board (:mod:`.firmware`), programs
compiled for the build machine (:mod:`.native_cc`), Monocypher fetched at build
time (:mod:`.third_party`), a device's private shard as C (:mod:`.emit_shard`)
and the per-board memory budget (:mod:`.budget`).
"""
