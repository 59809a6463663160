"""uvicorn in a background thread: how `station run` embeds the page beside the live loop, and how
the browser tests and the benchmark serve it on loopback."""
from __future__ import annotations

import threading
import time
from typing import Optional

import uvicorn
from fastapi import FastAPI


MAX_CONNECTIONS = 256  # a gym's phones and tablets are a handful; every one gets a live stream and more


class PageServer:
    """Serve `app` from a daemon thread; `start()` returns once the socket is listening."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.app = app
        # Idle keep-alive connections close after 5 s; past MAX_CONNECTIONS open connections and
        # tasks a request is answered 503 at once instead of queueing.
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=2, lifespan="on", timeout_keep_alive=5,
                                limit_concurrency=MAX_CONNECTIONS)
        self._server = uvicorn.Server(config)
        self._thread: Optional[threading.Thread] = None

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
        self._thread = threading.Thread(target=self._server.run, name="page-server", daemon=True)
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
