"""The connection registry: which gateway pods hold a user's live connections.

Written by the gateway (a pod adds itself for a user when the user's first connection on
it opens, refreshes every local user each heartbeat, removes itself when the last one
closes); read by whoever fans out (the chat and presence services) to publish one broker
message per pod. Entries expire after ``ttl`` seconds without a refresh, which is how a
pod that died stops receiving. It lives in the hot-state store under its own namespace,
``<MINITG_REDIS_PREFIX>registry:``, shared on purpose by those roles: it is the one piece
of Redis state that crosses a service boundary, and this class is its whole contract.

Adds are coalesced: the adds that arrive while a round trip is out leave together as one
pipeline, so a pod taking thousands of connects at once pays a few round trips, not one
per connect (an idle pod still sends each add at the next turn of the event loop).

Redis keeps nothing across a restart (or a flush), so the registry can forget every entry
at once; a user with no entry is then not offline, only unknown. The ``epoch`` key marks
the registry's birth ("<unix ms>:<random>", created by whoever finds it missing): every
gateway pod reads it each ``REBIRTH_CHECK_SECONDS`` and re-registers all its users when it
changed (``gateway.registry_watch``), and a reader (``locate``) treats the registry as in
doubt for ``REBUILD_SECONDS`` after its birth: a user missing then may be online on a pod
that has not re-registered yet, so fan-out retries them instead of skipping them. A
deployment's first seconds are in doubt the same way (nobody can tell a fresh Redis from
a restarted one), which only delays the "offline" verdict, never a delivery.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from svckit.coalesce import Coalescer
from svckit.metrics import DELIVERY_RECIPIENTS_SKIPPED
from svckit.ports import HotState

ADD_BATCH = 500  # registry adds per pipeline
ADD_ROUND_TRIPS = 2  # pipelines of adds in flight at once
EPOCH_KEY = "epoch"
REBIRTH_CHECK_SECONDS = 1.0  # how often a gateway pod compares the epoch with its own
# In doubt for this long after a (re)birth: every pod's next check (1 s), a failed first
# command on a connection the restart broke (one more check), the re-registration itself
# (a pipeline per 1,000 users) and clock skew between hosts fit well inside it.
REBUILD_SECONDS = 5.0
WARN_EVERY_SECONDS = 10.0  # at most one "recipients deferred" warning per publisher


@dataclass(frozen=True, slots=True)
class Located:
    """Where a lookup found its users, and who it did not find.

    ``missing`` users have no live entry; ``in_doubt`` says the registry was (re)born less
    than ``REBUILD_SECONDS`` ago, so they may be online on a pod still re-registering
    (deliver to them later) rather than offline (skip them)."""

    by_pod: Mapping[str, list[int]]
    missing: list[int]
    in_doubt: bool


def registry_namespace(redis_prefix: str) -> str:
    """The hot-state namespace every role opens the registry under."""
    return f"{redis_prefix}registry:"


def _key(user_id: int) -> str:
    return f"user:{user_id}"


class ConnectionRegistry:
    """User id -> set of pod ids, with per-entry expiry."""

    def __init__(
        self,
        state: HotState,
        ttl: float,
        *,
        rebuild_seconds: float = REBUILD_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state, self.ttl = state, ttl
        self._rebuild_ms, self._clock = rebuild_seconds * 1000, clock
        self._adds: Coalescer[tuple[str, str], None] = Coalescer(
            self._add_many, max_items=ADD_BATCH, max_in_flight=ADD_ROUND_TRIPS, name="registry_add"
        )

    async def add(self, user_id: int, pod_id: str) -> None:
        """Record (or refresh) that ``pod_id`` holds a connection of ``user_id``."""
        await self._adds.submit((_key(user_id), pod_id))

    async def _add_many(self, pairs: list[tuple[str, str]]) -> list[None]:
        await self._state.expiring_add_many(pairs, self.ttl)
        return [None] * len(pairs)

    async def refresh(self, user_ids: Iterable[int], pod_id: str, *, chunk: int = 1000) -> None:
        """Refresh this pod's entry for many users (the heartbeat): one round trip a chunk."""
        ids = list(user_ids)
        for start in range(0, len(ids), chunk):
            pairs = [(_key(uid), pod_id) for uid in ids[start : start + chunk]]
            await self._state.expiring_add_many(pairs, self.ttl)

    async def remove(self, user_id: int, pod_id: str) -> None:
        """Record that ``pod_id`` holds no connection of ``user_id`` any more."""
        await self._state.expiring_remove(_key(user_id), pod_id)

    async def pods_of(self, user_ids: Sequence[int]) -> Mapping[str, list[int]]:
        """Pod id -> the given users with a live connection on that pod."""
        return (await self._lookup(user_ids))[0]

    async def locate(self, user_ids: Sequence[int]) -> Located:
        """``pods_of`` and who it missed, and whether missing may mean "not registered
        yet" (see ``Located``). The epoch is read after the entries (one more round trip,
        only when someone is missing), so a restart between the two reads as in doubt."""
        by_pod, missing = await self._lookup(user_ids)
        if not missing:
            return Located(by_pod, [], False)
        born_ms = _born_ms(await self.epoch())
        return Located(by_pod, missing, self._clock() * 1000 - born_ms < self._rebuild_ms)

    async def _lookup(self, user_ids: Sequence[int]) -> tuple[dict[str, list[int]], list[int]]:
        members = await self._state.expiring_members_many([_key(u) for u in user_ids])
        by_pod: dict[str, list[int]] = {}
        missing: list[int] = []
        for user_id, pods in zip(user_ids, members, strict=True):
            if not pods:
                missing.append(user_id)
            for pod in pods:
                by_pod.setdefault(pod, []).append(user_id)
        return by_pod, missing

    async def epoch(self) -> str:
        """The registry's birth mark; whoever finds it missing (a fresh or restarted
        Redis) creates it, so it changes exactly when the registry forgot everything."""
        value = await self._state.get(EPOCH_KEY)
        if value is not None:
            return value.decode()
        fresh = f"{int(self._clock() * 1000)}:{secrets.token_hex(4)}"
        if await self._state.set(EPOCH_KEY, fresh.encode(), only_if_absent=True):
            return fresh
        value = await self._state.get(EPOCH_KEY)  # another process created it first
        return fresh if value is None else value.decode()


def _born_ms(epoch: str) -> int:
    try:
        return int(epoch.partition(":")[0])
    except ValueError:  # not ours: treat the registry as just born
        return 2**62


class SkipNotes:
    """Counts the recipients one fan-out path found no entry for and warns, at most
    every ``WARN_EVERY_SECONDS``, while it defers them because the registry is in doubt
    (truly offline recipients are normal and only counted)."""

    def __init__(self, path: str, log: logging.Logger) -> None:
        self._offline = DELIVERY_RECIPIENTS_SKIPPED.labels(path, "offline")
        self._in_doubt = DELIVERY_RECIPIENTS_SKIPPED.labels(path, "in_doubt")
        self._log, self._path, self._warned = log, path, float("-inf")

    def note(self, located: Located) -> None:
        if not located.missing:
            return
        if not located.in_doubt:
            self._offline.inc(len(located.missing))
            return
        self._in_doubt.inc(len(located.missing))
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_SECONDS:
            self._warned = now
            self._log.warning(
                "%s fan-out: %d recipients have no registry entry while the registry is "
                "being rebuilt (Redis restarted or flushed?); delivering to them on retry",
                self._path, len(located.missing),
            )  # fmt: skip
