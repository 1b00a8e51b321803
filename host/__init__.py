"""tinyfed host tool: serial link, protocol, emulator launcher, federated rounds, CLI."""

__version__ = "0.1.0"
