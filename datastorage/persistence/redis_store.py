"""The Redis client: connection and a liveness probe (the DLQ and fan-out build on it)."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from redis.exceptions import RedisError

Redis = redis.Redis


def open_redis(url: str) -> redis.Redis:
    """A client for `url`; connections are opened lazily, so this never blocks start-up."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=2.0, socket_timeout=5.0, health_check_interval=30
    )


async def ping(client: redis.Redis, timeout_s: float = 2.0) -> bool:
    """True when Redis answers PING within the timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            return bool(await client.ping())
    except (RedisError, OSError, TimeoutError):
        return False


async def close(client: redis.Redis) -> None:
    """Close the client's connections."""
    await client.aclose()
