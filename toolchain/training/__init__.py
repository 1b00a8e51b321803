"""On-device training: what trains (:mod:`.schemes`, :mod:`.sparse`), the model as the
planner sees it (:mod:`.layers`), the training
plan (:mod:`.plan`) and its static memory plan (:mod:`.memory`), the plan as C tables
(:mod:`.emit`) and the device's training engine compiled for the build machine
(:mod:`.native_trainer`).
"""
