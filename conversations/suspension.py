"""Closing a suspended workspace's open sockets within seconds, on every daphne process.

Each widget and playground socket joins the workspace's group, `tenant-<id>`, on the Redis channel
layer when it opens; `tenant_suspend` emits `tenant.suspended` after commit, and the receiver here
sends `{"type": "tenant.suspended"}` to that group. Every socket in it sends a `tenant_suspended`
error frame and closes with 4403, wherever it runs. (The inbox has its own group and closes the
same way: handoff_bus.close_inboxes_of_suspended_tenant.)

The two sockets keep no channel layer of their own (see JsonFrameConsumer): one small task per
socket listens on a process-local channel instead, as the visitor's handoff listener does. The
cost per socket is one Redis ZADD when it opens and one ZREM when it closes; the channel layer's
single receive loop per process serves every listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

SUSPENDED_MESSAGE = "This workspace is suspended. See its billing page."
# Seconds a socket waits to join its tenant's group before opening unwatched (Redis down or slow).
JOIN_TIMEOUT = 2.0


def tenant_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}"


def close_sockets_of_suspended_tenant(sender: str, tenant_id: int, **kwargs: Any) -> None:
    """tenants.events receiver: tell every open widget and playground socket of the tenant to close."""
    if sender != "tenant.suspended":
        return
    try:
        async_to_sync(get_channel_layer().group_send)(tenant_group(tenant_id), {"type": "tenant.suspended"})
    except Exception:  # the sockets' next turn is refused anyway (the pipeline checks the tenant)
        logger.exception("could not close the sockets of suspended tenant %s", tenant_id)


class SuspensionWatchMixin:
    """For JsonFrameConsumer subclasses: call `suspension_watch_start()` once the socket is
    accepted and `suspension_watch_stop()` in `disconnect`."""

    tenant: Any
    _suspension_task: asyncio.Task | None = None

    async def suspension_watch_start(self) -> None:
        """Join the tenant's group before returning, so a suspension from now on reaches this socket.

        Best effort: with Redis unreachable the socket still opens (it must, see the `busy` frames
        in docs/protocol.md), unwatched; each turn is still refused for a suspended tenant."""
        layer = get_channel_layer()
        channel = await layer.new_channel()
        group = tenant_group(self.tenant.pk)
        try:
            await asyncio.wait_for(layer.group_add(group, channel), JOIN_TIMEOUT)
        except Exception as exc:  # Redis down or slow: open the socket anyway
            logger.warning("socket of tenant %s not watched for suspension: %r", self.tenant.pk, exc)
            return
        self._suspension_task = asyncio.get_running_loop().create_task(self._suspension_follow(layer, group, channel))

    async def suspension_watch_stop(self) -> None:
        task, self._suspension_task = self._suspension_task, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _suspension_follow(self, layer: Any, group: str, channel: str) -> None:
        try:
            while True:
                message = await layer.receive(channel)
                if message.get("type") == "tenant.suspended":
                    await self._send_error("tenant_suspended", SUSPENDED_MESSAGE)  # type: ignore[attr-defined]
                    await self.close(code=4403)  # type: ignore[attr-defined]
                    return
        finally:
            with contextlib.suppress(Exception):
                await layer.group_discard(group, channel)
