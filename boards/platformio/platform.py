"""tinyfed local PlatformIO platform (see boards/README.md, "PlatformIO")."""

from platformio.public import PlatformBase


class TinyfedPlatform(PlatformBase):
    """Boards come from boards/platformio/boards/*.json; the build is
    builder/main.py, which asks toolchain/image/firmware.py what to compile."""

    def is_embedded(self) -> bool:
        return True
