"""SecAgg+ neighbourhood graph (Bell et al. 2020): who masks with whom and who
holds whose Shamir shares.

Instead of the complete graph of SecAgg (Bonawitz et al. 2017: every client
masks with and shares to every other, O(n) work per client and O(n^2) for
the server), each client u has k = O(log n) neighbours N(u); pairwise masks
and the shares of u's secrets only involve N(u).  The graph is a *randomised
Harary graph*: the client ids are placed on a ring in a random (seeded)
order and each is joined to its k/2 nearest ring positions on either side,
so every vertex has degree exactly k (k even, k < n), the graph is
k-connected, and which ids end up adjacent is unpredictable without the seed.

The holders of u's Shamir shares are u itself and its neighbours, H(u) =
sorted(N(u) + {u}) (k + 1 holders: a surviving client contributes its own
b-share, as in Bonawitz et al. where the share list includes the owner); the
holder v gets x = 1 + (index of v in H(u)); client and server both derive it.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import numpy as np

from tinyfed_toolchain.facts.wire_table import WIRE


def default_degree(n: int) -> int:
    """k = smallest even number >= 2 ceil(log2 n) + 2 (SecAgg+: O(log n)), capped at n - 1."""
    if n < 2:
        raise ValueError("secure aggregation needs at least 2 clients")
    k = 2 * math.ceil(math.log2(n)) + 2
    k += k % 2
    return min(k, n - 1)


def default_threshold(k: int) -> int:
    """t = floor((k + 1) / 2) + 1: a strict majority of the k + 1 holders must answer."""
    return (k + 1) // 2 + 1


#: the smallest neighbourhood a device accepts (wire.def SA_MIN_NEIGHBOURS; device policy)
MIN_NEIGHBOURS: int = WIRE.const("SA_MIN_NEIGHBOURS")
MAX_NEIGHBOURS: int = WIRE.const("SA_MAX_NEIGHBOURS")


def policy_problem(k: int, t: int, min_neighbours: int = MIN_NEIGHBOURS) -> str | None:
    """Why a device refuses neighbourhood size ``k`` with threshold ``t`` (None: it accepts).

    The device policy (firmware/src/secagg/protocol.c, ADVERTISE_KEYS): at least
    SA_MIN_NEIGHBOURS neighbours, and a strict majority of the k + 1 holders of a
    secret (2t > k + 1), so that two disjoint sets of holders -- one told a client
    dropped, the other that it survived -- can never both reach t.
    """
    if k < max(MIN_NEIGHBOURS, min_neighbours):
        m = max(MIN_NEIGHBOURS, min_neighbours)
        return f"a neighbourhood of {k} < {m} (SA_MIN_NEIGHBOURS / the fleet's min_neighbours): secure " \
               f"aggregation needs >= {m + 1} devices"
    if k > MAX_NEIGHBOURS:
        return f"a neighbourhood of {k} > {MAX_NEIGHBOURS} (SA_MAX_NEIGHBOURS)"
    if not 2 * t > k + 1:
        return f"threshold {t} is not a strict majority of the {k + 1} holders (needs >= {default_threshold(k)})"
    if t > k + 1:
        return f"threshold {t} > {k + 1} holders"
    return None


def round_after(r: int, last: int) -> bool:
    """RFC 1982 serial-number order of round ids (as the device): 0 < r - last < 2^31 mod 2^32."""
    d = (int(r) - int(last)) & 0xFFFFFFFF
    return 0 < d < 0x80000000


@dataclass(frozen=True)
class Graph:
    """An undirected neighbourhood graph over client ids (u32, nonzero)."""

    neighbours: dict[int, tuple[int, ...]]  # id -> sorted neighbour ids
    _holders: dict[int, tuple[int, ...]] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def ids(self) -> list[int]:
        return sorted(self.neighbours)

    def degree(self, u: int) -> int:
        return len(self.neighbours[u])

    def holders(self, owner: int) -> tuple[int, ...]:
        """H(owner) = sorted(N(owner) + {owner}): who holds shares of owner's secrets (kept: the
        server asks for each owner's many times a round)."""
        h = self._holders.get(owner)
        if h is None:
            h = self._holders[owner] = holders(owner, self.neighbours[owner])
        return h

    def holder_x(self, owner: int, holder: int) -> int:
        """Shamir x of ``holder`` for the secrets of ``owner`` (1..k+1)."""
        return self.holders(owner).index(holder) + 1

    def check(self) -> None:
        for u, ns in self.neighbours.items():
            if u in ns or list(ns) != sorted(set(ns)):
                raise ValueError(f"bad neighbour list of {u}")
            for v in ns:
                if u not in self.neighbours.get(v, ()):
                    raise ValueError(f"graph not symmetric at {u}-{v}")


def holders(owner: int, neighbours: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted((*neighbours, owner)))


def harary_graph(ids: list[int], k: int, seed: int | None = None) -> Graph:
    """Randomised Harary graph of even degree k (k >= n - 1: the complete graph)."""
    n = len(ids)
    if n < 2 or len(set(ids)) != n or any(not 1 <= i <= 0xFFFFFFFF for i in ids):
        raise ValueError("need >= 2 distinct client ids in 1..2^32-1")
    if k < 1:
        raise ValueError("degree must be >= 1")
    if k >= n - 1:
        return Graph({u: tuple(sorted(v for v in ids if v != u)) for u in ids})
    if k % 2:
        raise ValueError(f"degree {k} < n - 1 must be even (Harary ring)")
    if k > 254:
        raise ValueError("degree must be <= 254 (Shamir over GF(2^8) has 255 holders)")
    rng = np.random.default_rng(secrets.randbits(64) if seed is None else seed)
    ring = [ids[i] for i in rng.permutation(n)]
    adj: dict[int, set[int]] = {u: set() for u in ids}
    for p, u in enumerate(ring):
        for d in range(1, k // 2 + 1):
            v = ring[(p + d) % n]
            adj[u].add(v)
            adj[v].add(u)
    g = Graph({u: tuple(sorted(s)) for u, s in adj.items()})
    g.check()
    return g


__all__ = ["Graph", "MAX_NEIGHBOURS", "MIN_NEIGHBOURS", "holders", "default_degree", "default_threshold",
           "harary_graph", "policy_problem", "round_after"]
