"""Device identities for SecAgg+ tests: one ephemeral fleet (a fleet key that lives only in
this process, tinyfed_host.secagg.identity.ephemeral_fleet) per set of client ids, so the
reference clients, the C clients and the server of one test agree on the manifest."""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from tinyfed_host.secagg.identity import DeviceIdentity, ephemeral_fleet, identities
from tinyfed_toolchain.image.provision import Fleet


@lru_cache(maxsize=None)
def _fleet(ids: tuple[int, ...]) -> Fleet:
    return ephemeral_fleet(list(ids))


def fleet_for(ids: Iterable[int]) -> Fleet:
    return _fleet(tuple(sorted(set(int(i) for i in ids))))


def identity(device_id: int, ids: Iterable[int]) -> DeviceIdentity:
    """The identity of ``device_id`` in the fleet of ``ids``."""
    return identities(fleet_for(ids))[int(device_id)]
