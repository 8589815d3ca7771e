"""Concurrency slots: ``max_concurrency`` overall and a size per resource pool.

A slot is held while an attempt runs, not during its retry wait. Used on one event loop
(the concurrent executor's), so plain counters suffice; waiters are woken on every release.
"""

from __future__ import annotations

import asyncio
from typing import Mapping

__all__ = ["Slots"]


class Slots:
    """Free slots overall and per pool, with a way to wait until something is released."""

    def __init__(self, limit: int, pools: Mapping[str, int]) -> None:
        self.free = limit
        self.pool_free = dict(pools)
        self._waiters: list[asyncio.Future[None]] = []

    def available(self, pool: str | None) -> bool:
        return self.free > 0 and (pool is None or self.pool_free[pool] > 0)

    def take(self, pool: str | None) -> None:
        self.free -= 1
        if pool is not None:
            self.pool_free[pool] -= 1

    def give(self, pool: str | None) -> None:
        self.free += 1
        if pool is not None:
            self.pool_free[pool] += 1
        self._wake()

    def hold_pool(self, pool: str) -> None:
        """Keep one slot of ``pool`` taken beyond the attempt (an abandoned thread still runs)."""
        self.pool_free[pool] -= 1

    def release_pool(self, pool: str) -> None:
        self.pool_free[pool] += 1
        self._wake()

    def changed(self) -> asyncio.Future[None]:
        """A future resolved at the next release."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def retake(self, pool: str | None) -> None:
        """Wait for a free slot (and pool slot), then take it."""
        while not self.available(pool):
            await self.changed()
        self.take(pool)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
