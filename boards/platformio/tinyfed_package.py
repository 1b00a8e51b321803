"""Load this project's toolchain package for PlatformIO's SCons scripts (builder/main.py,
extra_sources.py), from the project folder, whatever else is installed."""

import importlib
import importlib.util
import os
import sys


def firmware_module(project_dir):
    """``tinyfed_toolchain.image.firmware`` (the one description of an image build), with the
    package registered from ``<project_dir>/toolchain``."""
    if "tinyfed_toolchain" not in sys.modules:
        init = os.path.join(project_dir, "toolchain", "__init__.py")
        spec = importlib.util.spec_from_file_location("tinyfed_toolchain", init,
                                                      submodule_search_locations=[os.path.dirname(init)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = package
        spec.loader.exec_module(package)
    return importlib.import_module("tinyfed_toolchain.image.firmware")
