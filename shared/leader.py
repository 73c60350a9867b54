"""One active instance among several (architecture 3): a Redis lease with a fencing token.

The dispatcher and the notifier run as several instances; the one holding the lease acts,
the others wait. Taking the lease is `SET key NX PX ttl` and, in the same script, `INCR`
of a counter that never goes down: each new leader gets a larger fencing token. The
holder renews before the lease runs out, through a script that extends the lease only
while it still holds it. A holder that cannot renew in time (Redis away, the process
paused) stops acting at its own deadline, which starts before its request was sent, so
it always stops before Redis lets anyone else take over. The token goes with what the
leader writes: `Fence.write` refuses a token lower than the highest it has seen, so a
leader that was paused and has not yet noticed that it lost the lease cannot overwrite
its successor's work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.errors import Conflict
from shared.tasks import stop_if_cancelled

log = logging.getLogger(__name__)

# KEYS[1] the lease, KEYS[2] the token counter; ARGV[1] holder id, ARGV[2] ttl in ms.
# The lease's value is "<token>|<holder>" so that renewal checks both.
_ACQUIRE = """
local token = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if not redis.call('SET', KEYS[1], token .. '|' .. ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
redis.call('INCR', KEYS[2])
return token
"""

# KEYS[1] the lease; ARGV[1] "<token>|<holder>", ARGV[2] ttl in ms. 1 renewed, 0 lost.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] the lease; ARGV[1] "<token>|<holder>". 1 released, 0 not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] the fence (highest token seen), KEYS[2] a hash; ARGV[1] token, ARGV[2] field,
# ARGV[3] value. 1 written, 0 refused (a larger token has written before).
_FENCED_HSET = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < seen then
  return 0
end
if token > seen then
  redis.call('SET', KEYS[1], token)
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class StaleLeader(Conflict):
    """A write carried a fencing token older than one already seen: a newer leader acts."""


class LeaseKeys:
    """Key names of one lease; the hash tag keeps them in one slot of a Redis cluster."""

    def __init__(self, prefix: str, name: str) -> None:
        base = f"{prefix}leader:{{{name}}}"
        self.lease = base
        self.token = f"{base}:token"
        self.fence = f"{base}:fence"


@dataclass
class Lease:
    """The lease `name` as held (or wanted) by `holder`; the calls are single round trips."""

    redis: aioredis.Redis
    prefix: str
    name: str
    holder: str
    ttl_ms: int = 6000

    def __post_init__(self) -> None:
        if self.ttl_ms < 100:
            raise ValueError(f"ttl_ms {self.ttl_ms}: a lease shorter than 100 ms cannot be kept")
        self.keys = LeaseKeys(self.prefix, self.name)

    def value(self, token: int) -> str:
        return f"{token}|{self.holder}"

    async def acquire(self) -> int | None:
        """The new fencing token if the lease was free and is now ours, else None."""
        token = await self.redis.eval(
            _ACQUIRE, 2, self.keys.lease, self.keys.token, self.holder, self.ttl_ms
        )
        return None if token is None else int(token)

    async def renew(self, token: int) -> bool:
        """Extend the lease by its ttl if we still hold it under `token`."""
        done = await self.redis.eval(_RENEW, 1, self.keys.lease, self.value(token), self.ttl_ms)
        return bool(done)

    async def release(self, token: int) -> bool:
        """Give the lease up at once (a clean shutdown), if it is still ours."""
        done = await self.redis.eval(_RELEASE, 1, self.keys.lease, self.value(token))
        return bool(done)

    async def holder_now(self) -> tuple[int, str] | None:
        """(token, holder) of whoever holds the lease, None when it is free."""
        raw = await self.redis.get(self.keys.lease)
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else raw
        token, _, holder = text.partition("|")
        return int(token), holder


@dataclass
class Fence:
    """Writes that carry a fencing token: one from an older leader than seen is refused.

    On a Redis Cluster, the keys written must carry the lease's hash tag (`{name}`), so
    that the check and the write run in one slot.
    """

    redis: aioredis.Redis
    keys: LeaseKeys

    async def hset(self, token: int, key: str, field_: str, value: bytes | str) -> None:
        """`HSET key field value` unless a larger token has written; else StaleLeader."""
        done = await self.redis.eval(_FENCED_HSET, 2, self.keys.fence, key, token, field_, value)
        if not done:
            raise StaleLeader(f"fencing token {token} is older than the current leader's")

    async def highest(self) -> int:
        """The largest token that has written so far (0: none)."""
        raw = await self.redis.get(self.keys.fence)
        return 0 if raw is None else int(raw)


@dataclass
class Leader:
    """Keeps trying to lead through `lease`; `token()` says whether to act right now.

    Renewal runs every `ttl / 3`; a follower tries to take the lease every `retry_s`.
    The local deadline is the send time of the last successful request plus the ttl
    (less `margin_ms` for clock drift between this host and Redis), so a holder whose
    renewals stop getting through stops acting before the lease can pass to another.
    """

    lease: Lease
    retry_s: float = 0.5
    margin_ms: int = 200
    clock: Callable[[], float] = time.monotonic
    _token: int | None = None
    _deadline: float = 0.0
    changes: int = field(default=0)  # times this instance became leader

    def token(self) -> int | None:
        """The fencing token while this instance leads, None otherwise."""
        if self._token is None or self.clock() >= self._deadline:
            return None
        return self._token

    @property
    def renew_every_s(self) -> float:
        return self.lease.ttl_ms / 3000

    async def step(self) -> int | None:
        """One attempt: renew what we hold, else try to take it. The token, or None."""
        sent = self.clock()
        valid_s = (self.lease.ttl_ms - self.margin_ms) / 1000
        try:
            if self._token is not None and self.token() is not None:
                if await self.lease.renew(self._token):
                    self._deadline = sent + valid_s
                    return self._token
                log.warning("leadership lost", extra={"lease": self.lease.name})
                self._token = None
                return None
            self._token = None
            token = await self.lease.acquire()
        except (RedisError, OSError, TimeoutError):
            stop_if_cancelled()  # the client turned our cancellation into its own error
            log.warning("lease not reachable", extra={"lease": self.lease.name}, exc_info=True)
            return self.token()
        if token is not None:
            self._token, self._deadline = token, sent + valid_s
            self.changes += 1
            log.info("leadership taken", extra={"lease": self.lease.name, "token": token})
        return token

    async def run(self) -> None:
        """Hold or chase the lease until cancelled (a task of the service's TaskGroup)."""
        while True:
            token = await self.step()
            stop_if_cancelled()  # one a client swallowed on the way
            await asyncio.sleep(self.renew_every_s if token is not None else self.retry_s)

    async def resign(self) -> None:
        """Release the lease on shutdown so a follower takes over without waiting."""
        token, self._token = self._token, None
        if token is not None:
            try:
                await self.lease.release(token)
            except (RedisError, OSError, TimeoutError):
                log.warning("lease not released; it expires", extra={"lease": self.lease.name})


def instance_id() -> str:
    """Who holds a lease: host and process, and a random part (a restarted pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


# What a service does while it leads: start it, and get back how to stop it.
Act = Callable[[], Awaitable[Callable[[], Awaitable[None]]]]


async def while_leading(leader: Leader, act: Act, poll_s: float = 0.2) -> None:
    """Run `act` whenever this instance leads, and stop what it started as soon as it
    does not (the lease lost, or not renewed in time); until cancelled."""
    stop: Callable[[], Awaitable[None]] | None = None
    try:
        while True:
            # the token expires by the clock, not by an event: looked at every `poll_s`
            leading = leader.token() is not None
            if leading and stop is None:
                log.warning("leading: starting", extra={"lease": leader.lease.name})
                stop = await act()
            elif not leading and stop is not None:
                log.warning("no longer leading: stopping", extra={"lease": leader.lease.name})
                await stop()
                stop = None
            await asyncio.sleep(poll_s)
    finally:
        if stop is not None:
            await stop()
