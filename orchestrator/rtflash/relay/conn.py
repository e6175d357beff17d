"""Deadlines per connection, before a request exists: the TLS handshake, then the request headers.

Why: the 408 in server.py only bounds the body. A client that opens TCP and then stalls in the TLS
handshake or in its request line/headers would otherwise hold a socket (and a TLS state) as long as it
likes: thousands of them exhaust the relay's file descriptors. Each gets `timeout` seconds (the
relay's `read_timeout`), then the connection is closed with one log line naming the peer and what did
not arrive.

What the installed aiohttp (3.14) and asyncio offer, and what is used:
- asyncio's `ssl_handshake_timeout` (Python docs, "Event Loop": `loop.create_server(...,
  ssl_handshake_timeout=)`, `loop.start_tls(...)`; default 60 s) aborts a handshake that takes longer.
  aiohttp's TCPSite passes none (web_runner.py) and, done inside `create_server`, a timed-out handshake
  is dropped silently before any protocol learns the peer's address. So the listening server here is
  plain TCP, and each accepted connection is upgraded with `loop.start_tls(..., server_side=True,
  ssl_handshake_timeout=timeout)`: the same SSLProtocol, with the peer known when it gives up
  (ConnectionAbortedError, sslproto.py `_check_handshake_timeout`).
- aiohttp's `RequestHandler(keepalive_timeout=)` is armed at connection_made and closes a connection
  whose first request is not parsed by then (web_protocol.py), but silently, and it is also the idle
  keep-alive timeout (3630 s by default, kept: a reverse proxy reuses its connections). So the header
  deadline is a timer of our own per connection, disarmed by `middleware` when aiohttp hands the app a
  request (its headers are in). The HTTP side stays aiohttp's own: `web.Server` (the runner's server)
  makes the RequestHandler, which gets the TLS transport exactly as its site would give it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from rtflash import redact

log = logging.getLogger("rtflash.relay")


def peer_text(transport: asyncio.BaseTransport) -> str:
    """`127.0.0.1:50312` / `[::1]:50312` for the log ('?' when the socket is already gone)."""
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple) or len(peer) < 2:
        return "?"
    return f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"


@dataclass
class Deadlines:
    """The per-connection deadlines of one relay process; `slow` counts connections closed for them."""

    timeout: float
    slow: int = 0
    _waiting: dict[object, asyncio.TimerHandle] = field(default_factory=dict)  # handler -> header timer
    _handshakes: set[asyncio.Task] = field(default_factory=set)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """A request reached the app: its connection sent its headers in time."""
        timer = self._waiting.pop(request.protocol, None)
        if timer is not None:
            timer.cancel()
        return await handler(request)

    def protocol_factory(self, server: web.Server, ssl_context: ssl.SSLContext | None) -> Callable[[], _Gate]:
        """For `loop.create_server`: each connection through a _Gate to aiohttp's RequestHandler."""
        return lambda: _Gate(self, server, ssl_context)

    def close(self) -> None:
        """Stop: abandon handshakes in progress, disarm the header timers (aiohttp closes those)."""
        for task in list(self._handshakes):
            task.cancel()
        for timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()

    def _slow(self, transport: asyncio.BaseTransport, peer: str, what: str) -> None:
        self.slow += 1
        log.warning(redact.redact(f"slow client {peer}: {what} in {self.timeout:g} s"))
        transport.abort()  # not close(): a TLS close waits for the peer's close_notify, which a staller never sends

    def _hand_over(self, handler: asyncio.Protocol, transport: asyncio.Transport, peer: str) -> None:
        """aiohttp's handler takes the connection; the header deadline starts."""
        handler.connection_made(transport)

        def due() -> None:
            if self._waiting.pop(handler, None) is not None and not transport.is_closing():
                self._slow(transport, peer, "no request headers")

        self._waiting[handler] = asyncio.get_running_loop().call_later(self.timeout, due)


class _Gate(asyncio.Protocol):
    """An accepted TCP connection until aiohttp's handler has it (plain HTTP: at once; HTTPS: after the
    handshake). Reading is paused meanwhile. asyncio's loop keeps it paused; uvloop starts reading right
    after `connection_made` whatever it did (uvloop handles/basetransport.pyx `_call_connection_made`),
    so there the ClientHello may land here before `start_tls` takes the transport over: it is kept and
    handed to the TLS protocol first, before anything read after it."""

    def __init__(self, deadlines: Deadlines, server: web.Server, ssl_context: ssl.SSLContext | None) -> None:
        self.deadlines, self.server, self.ssl_context = deadlines, server, ssl_context
        self.early = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "pause_reading")  # uvloop's: no subclass
        peer = peer_text(transport)
        handler = self.server()
        if self.ssl_context is None:
            transport.set_protocol(handler)
            self.deadlines._hand_over(handler, transport, peer)
            return
        transport.pause_reading()  # start_tls takes over reading; the ClientHello must not land here
        task = asyncio.ensure_future(self._handshake(transport, handler, peer))
        self.deadlines._handshakes.add(task)
        task.add_done_callback(self.deadlines._handshakes.discard)

    async def _handshake(self, tcp: asyncio.Transport, handler: asyncio.Protocol, peer: str) -> None:
        loop = asyncio.get_running_loop()
        assert self.ssl_context is not None
        if tcp.is_closing():
            return
        upgrade = loop.start_tls(tcp, handler, self.ssl_context, server_side=True,
                                 ssl_handshake_timeout=self.deadlines.timeout)
        if tcp.is_reading() or self.early:  # uvloop: reading again, maybe read already (see the class)
            upgrade = asyncio.ensure_future(upgrade)
            await asyncio.sleep(0)  # start_tls' first step has run: the TLS protocol has the transport,
            # reading paused, its connection_made and resume_reading queued; queued after them, before
            # anything read next: what came early
            loop.call_soon(self._hand_early, tcp)
        try:
            tls = await upgrade
        except ConnectionAbortedError:  # asyncio's handshake timeout
            self.deadlines._slow(tcp, peer, "no TLS handshake")
            return
        except (OSError, ssl.SSLError, EOFError):  # gone, or not TLS: dropped as aiohttp's own site does
            tcp.abort()
            return
        if tls is None:  # the connection closed as the handshake finished
            return
        self.deadlines._hand_over(handler, tls, peer)

    def _hand_early(self, tcp: asyncio.Transport) -> None:
        """Give the TLS protocol the bytes read before it had the transport (uvloop only; see the class)."""
        data, self.early = bytes(self.early), bytearray()
        proto = tcp.get_protocol()
        if not data or proto is self or tcp.is_closing():
            return
        if isinstance(proto, asyncio.BufferedProtocol) or hasattr(proto, "get_buffer"):  # both SSLProtocols are
            view = memoryview(data)
            while view:
                buf = proto.get_buffer(len(view))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                proto.buffer_updated(n)
                view = view[n:]
        else:
            proto.data_received(data)

    def data_received(self, data: bytes) -> None:
        self.early += data  # uvloop: read before start_tls paused the transport (see the class)

    def connection_lost(self, exc: Exception | None) -> None:  # pragma: no cover - start_tls' protocol has it
        pass


class DeadlineSite(web.BaseSite):
    """An aiohttp site (the runner cleans it up like its own) on host:port or a shared listening socket,
    with Deadlines on every connection."""

    def __init__(self, runner: web.BaseRunner, deadlines: Deadlines, host: str = "", port: int = 0,
                 sock: socket.socket | None = None, ssl_context: ssl.SSLContext | None = None,
                 backlog: int = 512) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self.deadlines, self.host, self.port, self.sock = deadlines, host, port, sock

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host or '0.0.0.0'}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        factory = self.deadlines.protocol_factory(server, self._ssl_context)
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self._server = await loop.create_server(factory, sock=self.sock, backlog=self._backlog)
        else:
            self._server = await loop.create_server(factory, self.host, self.port, backlog=self._backlog,
                                                    reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await super().stop()
        self.deadlines.close()
