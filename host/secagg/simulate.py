"""Simulated SecAgg+ clients for tests and benchmarks: the host reference
client (client.py) behind an endpoint that exchanges bytes, and can be made to
"lose power" at a chosen stage (before answering it, or after answering it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tinyfed_toolchain.facts.errors import DeviceFailure

from .client import SecAggClient
from tinyfed_toolchain.image.provision import Fleet

from .encoding import Encoding, n_words
from .identity import ephemeral_fleet, identities
from .graph import Graph, harary_graph
from .server import STAGES, SecAggResult, SecAggServer


class Dropped(DeviceFailure, ConnectionError):
    """The simulated client is gone."""


@dataclass
class LocalEndpoint:
    """A client reached in-process; ``die_before`` / ``die_after`` name a stage."""

    client: SecAggClient
    die_before: str | None = None
    die_after: str | None = None
    dead: bool = False
    seen: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (message, request, reply)

    @property
    def id(self) -> int:
        return self.client.id

    def exchange(self, message: str, payload: bytes) -> bytes:
        if self.dead or message == self.die_before:
            self.dead = True
            self.client.wipe()
            raise Dropped(f"client {self.id} lost power before {message}")
        reply = self.client.handle(message, payload)
        self.seen.append((message, payload, reply))
        if message == self.die_after:
            self.dead = True  # the reply is out; the next stage finds it gone
        return reply


def simulate_round(updates: Sequence[np.ndarray], weights: Sequence[int], enc: Encoding, *, degree: int,
                   threshold: int, round_id: int = 1, seed: int | None = 0,
                   die_before: dict[int, str] | None = None, die_after: dict[int, str] | None = None,
                   ids: Sequence[int] | None = None, keep_encoding: bool = True,
                   rand=os.urandom, fleet: Fleet | None = None) -> tuple[SecAggServer, list[LocalEndpoint], Graph]:
    """Run one round over simulated clients (ids 1..n unless given; identities from ``fleet``,
    default an ephemeral fleet of exactly those ids); returns the server (``.result`` set, or
    SecAggAbort raised), the endpoints and the graph."""
    ids = list(ids) if ids is not None else list(range(1, len(updates) + 1))
    fleet = fleet if fleet is not None else ephemeral_fleet(ids)
    who = identities(fleet)
    g = harary_graph(ids, degree, seed)
    eps = []
    for i, (x, w) in zip(ids, zip(updates, weights)):
        c = SecAggClient(who[i], enc, rand=rand, keep_encoding=keep_encoding)
        c.set_update(x, w)
        eps.append(LocalEndpoint(c, (die_before or {}).get(i), (die_after or {}).get(i)))
    srv = SecAggServer(g, threshold, round_id, n_words(int(np.asarray(updates[0]).size)),
                       fleet_ids=fleet.manifest.ids)
    srv.run(eps)
    return srv, eps, g


__all__ = ["Dropped", "LocalEndpoint", "STAGES", "SecAggResult", "simulate_round"]
