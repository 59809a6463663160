"""uvicorn in a background thread: how `station run` embeds the page beside the live loop, and how
the browser tests and the benchmark serve it on loopback.

No one client can hold the page: each client address may keep at most MAX_CONNECTIONS_PER_CLIENT
connections open (more are closed as they come), and a request whose head has not fully arrived
HEADER_TIMEOUT_S after the connection opened (or after the last answer on it) is closed, however
slowly it is fed. The body has its own limit (web/guard.py). So 256 slow, half-sent requests from
one address take that address's share, not the page.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any, Optional

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256  # a gym's phones and tablets are a handful; every one gets a live stream and more
MAX_CONNECTIONS_PER_CLIENT = 32  # a browser keeps 6 per host; a phone with a few tabs, a screen, a script
HEADER_TIMEOUT_S = 10.0  # a request head (a few hundred bytes) takes milliseconds on a LAN


class ClientGuardProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a cap per client address and a deadline for each request head.
    The counts live on the server's state, which every connection of one server shares."""

    header_timeout_s = HEADER_TIMEOUT_S
    max_per_client = MAX_CONNECTIONS_PER_CLIENT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else "?"
        self._head_deadline: Optional[asyncio.TimerHandle] = None
        per_client = _per_client(self.server_state)
        if per_client[self._address] >= self.max_per_client:
            self._counted = False
            log.debug("closing a connection from %s: it holds %d already", self._address, self.max_per_client)
            transport.close()
            return
        self._counted = True
        per_client[self._address] += 1
        self._arm()

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closing a connection from %s: no complete request head in %.0f s", self._address,
                      self.header_timeout_s)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a head under way (also the next one on a kept-alive connection)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._arm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        super().connection_lost(exc)
        self._disarm()
        if getattr(self, "_counted", False):
            self._counted = False
            per_client = _per_client(self.server_state)
            per_client[self._address] -= 1
            if per_client[self._address] <= 0:
                del per_client[self._address]


def _per_client(server_state: Any) -> Counter[str]:
    counts = getattr(server_state, "hinge_per_client", None)
    if counts is None:
        counts = Counter()
        server_state.hinge_per_client = counts
    return counts


class PageServer:
    """Serve `app` from a daemon thread; `start()` returns once the socket is listening."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 header_timeout_s: float = HEADER_TIMEOUT_S, max_per_client: int = MAX_CONNECTIONS_PER_CLIENT):
        self.app = app
        self.header_timeout_s = header_timeout_s
        protocol = type("PageProtocol", (ClientGuardProtocol,),
                        {"header_timeout_s": header_timeout_s, "max_per_client": max_per_client})
        # Idle keep-alive connections close after 5 s; past MAX_CONNECTIONS open connections and
        # tasks a request is answered 503 at once instead of queueing; ClientGuardProtocol keeps any
        # one address to its share and closes request heads that do not arrive.
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=2, lifespan="on", timeout_keep_alive=5,
                                limit_concurrency=MAX_CONNECTIONS, http=protocol)
        self._server = uvicorn.Server(config)
        self._thread: Optional[threading.Thread] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None  # the server's event loop, once it runs

    def _serve(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self._server.serve()

        asyncio.run(serve())

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", None)
        if not servers:
            raise RuntimeError("the page server is not listening yet")
        return servers[0].sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        host = self._server.config.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        self._thread = threading.Thread(target=self._serve, name="page-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the page server did not start (is port {self._server.config.port} free?)")
            if time.monotonic() > deadline:
                raise RuntimeError("the page server did not start in time")
            time.sleep(0.02)
        return self.base_url

    def stop(self, timeout: float = 5.0) -> None:
        self.app.state.context.closing.set()  # ends open live streams so shutdown does not wait on them
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "PageServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
