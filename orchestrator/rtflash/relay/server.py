"""The relay's HTTP side: devices POST their SDP offer, the relay forwards it with the real key.

Why aiohttp: one well-kept asyncio library (aio-libs, releases every few weeks) gives both the server
and the upstream client, with connection pooling to the Realtime API (one TLS handshake serves many
set-ups), a plain `ssl.SSLContext` on both sides, streaming request bodies (so the size cap and the
read timeout are enforced while reading, not after) and no thread per connection; the Realtime
stand-in the tests use is aiohttp too. httpx has no server; Starlette/uvicorn would be two more
packages for the same two routes.

Device side: `POST /v1/realtime/calls`, `Authorization: Bearer <device token>`, `Content-Type:
application/sdp`, body the offer -- exactly what a device sends to OpenAI in direct-key mode, so the
firmware's code path is the same with another URL and Bearer. Query parameters are ignored: the
session is the relay's.

Upstream side: the Realtime API's "unified interface" (shared/FACTS.md, "The Realtime API over WebRTC
today"): `POST https://api.openai.com/v1/realtime/calls` as `multipart/form-data` with an `sdp` part
(the offer, unchanged) and a `session` part (JSON: type, model, instructions, audio.output.voice from
rtflash.toml), `Authorization: Bearer <API key>`. 201 -> the device gets 201, the SDP answer
(application/sdp) and the `Location` header as the API sent it.

Statuses the device can get: 401 unknown or revoked token (nothing sent upstream), 429 over a
per-device limit (Retry-After), 415 not application/sdp, 413 body over the cap, 408 body not received
within the read timeout, 400 not an SDP offer (must start `v=0`), 502 upstream unreachable / closed /
answered 5xx / refused the relay's key (401/403: the relay's problem, not the device's, so the device
retries rather than giving up), 504 upstream timeout, other upstream 4xx as sent. Errors are JSON in
the API's own shape; an upstream error body is passed on with the key (and any `sk-...` fragment)
masked. One log line per request, through `rtflash.redact`; a token is never logged (the relay only
ever holds it for the hash) and the key is registered as a secret.

Around that: connection deadlines before a request exists (conn.py: TLS handshake, request headers),
and each answered call recorded for `relay revoke` to hang up (calls.py). The store (store.py) is
asked through `store.in_store` (SQLite on the loop: its transactions cost less than a thread hand-off;
PostgreSQL in a thread: a network round trip must not stall the loop): the token's device and the
per-device limits in one go before anything is read, the slot released after.

Other routes: `GET /healthz` (JSON: store reachable, upstream reachable, version; 200 when both are,
else 503) for a load balancer, `GET /metrics` (Prometheus text, metrics.py). With `behind_proxy` the
device's address in the log is the proxy's `X-Forwarded-For` (its last entry: the one the proxy on
this host added), else the socket's peer; the header is never trusted without that mode.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from rtflash import redact
from rtflash.errors import RtflashError
from rtflash.relay.calls import CallHangups, call_id_from
from rtflash.relay.conn import Deadlines, DeadlineSite
from rtflash.relay.limits import LimitConfig, Refused
from rtflash.relay.metrics import CONTENT_TYPE, Metrics
from rtflash.relay.store import CallRecord, Device, Store, in_store, now_iso

DEFAULT_UPSTREAM = "https://api.openai.com/v1/realtime/calls"
CALLS_PATH = "/v1/realtime/calls"
log = logging.getLogger("rtflash.relay")
_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+
_KEY_FRAGMENT = re.compile(r"sk-[A-Za-z0-9_\-*.]{3,}")


@dataclass
class RelayConfig:
    api_key: str
    store: Store
    session_for: Callable[[Device], dict]  # the `session` object for a device (config.session_object)
    upstream: str = DEFAULT_UPSTREAM
    upstream_ssl: ssl.SSLContext | None = None  # None: the system's CAs, verified
    upstream_ca: str = ""  # the CA file behind upstream_ssl, recorded with each call for `relay revoke`
    limits: LimitConfig = field(default_factory=LimitConfig)
    max_body: int = 64 * 1024
    read_timeout: float = 10.0  # each of: TLS handshake, request headers, body
    upstream_timeout: float = 20.0
    max_upstream: int = 100  # pooled connections to the API
    flush_seconds: float = 10.0  # how often last-use times go to the store
    behind_proxy: bool = False  # the device's address from X-Forwarded-For (a proxy on this host sets it)
    worker: int = 0  # `serve --workers N`: which process this is (the metrics' label)

    @property
    def hold(self) -> float:
        """Seconds a concurrency slot lasts if its process dies holding it: longer than any offer."""
        return self.read_timeout + self.upstream_timeout + 5.0


class _Fail(Exception):
    def __init__(self, status: int, code: str, message: str, log_text: str = "", **headers: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.log_text, self.headers = log_text or message, headers


def api_error(status: int, message: str, code: str | None, type_: str = "invalid_request_error",
              headers: dict[str, str] | None = None) -> web.Response:
    """The Realtime API's error shape, so a device parses one kind of error whoever refused it."""
    body = {"error": {"message": message, "type": type_, "code": code, "param": None}}
    return web.json_response(body, status=status, headers=headers)


class RedactingFormatter(logging.Formatter):
    """For the relay's log handler: every formatted line (tracebacks included) through rtflash.redact."""

    def format(self, record: logging.LogRecord) -> str:
        return redact.redact(super().format(record))


class Relay:
    """The relay app. `await start(host, port, ssl_context)`, then serve until `await stop()`."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.metrics = Metrics(config.worker)
        self.statuses = self.metrics.statuses
        self.url = ""
        self._uses: dict[str, tuple[str, str]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._flusher: asyncio.Task | None = None
        self.deadlines = Deadlines(config.read_timeout)
        self.hangups = CallHangups(config.api_key, lambda: self._http)
        redact.register(config.api_key)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.deadlines.middleware])
        app.router.add_post(CALLS_PATH, self._calls)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                    sock: socket.socket | None = None) -> None:
        """Serve on host:port, or on `sock` (a listening socket several worker processes share)."""
        cfg = self.config
        # keep-alive: the pool keeps idle upstream connections (aiohttp's keepalive_timeout, 15 s by default,
        # raised to 60 s: under a steady trickle of set-ups one TLS handshake serves them all). New
        # connections are counted where their socket is made (the connector's socket_factory), not with
        # aiohttp's trace hooks: those add a round of signal coroutines to every request (CPU per offer,
        # bench/relay_bench.py); reused = requests - new (metrics.py)
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=cfg.max_upstream, keepalive_timeout=60.0,
                                           ssl=cfg.upstream_ssl or ssl.create_default_context(),
                                           socket_factory=self._upstream_socket),
            timeout=aiohttp.ClientTimeout(total=cfg.upstream_timeout), cookie_jar=aiohttp.DummyCookieJar())
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, lingering_time=2.0)
        await self._runner.setup()
        site = DeadlineSite(self._runner, self.deadlines, host, port, sock, ssl_context, backlog=512)
        await site.start()
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{host}:{site.port}{CALLS_PATH}"
        self._flusher = asyncio.ensure_future(self._flush_loop())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.hangups.drain()  # refused calls hung up before the upstream session goes
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.flush()

    async def flush(self) -> None:
        """Write the last-use times gathered since the last flush to the store, and drop what is over
        (calls older than an hour, expired slots): the periodic writes no offer waits for."""
        uses, self._uses = self._uses, {}
        if uses:
            try:
                await in_store(self.config.store, self.config.store.record_use, uses)
            except RtflashError as exc:
                log.warning(redact.redact(f"could not record last use: {exc}"))
        try:
            await in_store(self.config.store, self.config.store.prune)
        except RtflashError as exc:
            log.warning(redact.redact(f"could not drop finished calls: {exc}"))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_seconds)
            await self.flush()

    # the device endpoint ----------------------------------------------------------------------------

    def _upstream_socket(self, addr_info: tuple) -> socket.socket:
        """A new upstream connection's socket (aiohappyeyeballs' default, counted for /metrics)."""
        self.metrics.upstream_new += 1
        family, type_, proto, *_ = addr_info
        return socket.socket(family=family, type=type_, proto=proto)

    async def _health(self, request: web.Request) -> web.Response:
        """Store and upstream reachable (a TCP connect to the API's host), and the version: for a load
        balancer's health check. No secret and no device in it."""
        from rtflash import __version__

        try:
            await in_store(self.config.store, self.config.store.ping)
            store = "ok"
        except RtflashError as exc:
            store = redact.redact(str(exc))
        parts = urlsplit(self.config.upstream)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), 3.0)
            writer.close()
            upstream = "ok"
        except asyncio.TimeoutError:
            upstream = f"{parts.hostname}:{port}: no answer in 3 s"
        except OSError as exc:  # errno > 0: a socket error ("Connect call failed" -> "Connection refused")
            why = os.strerror(exc.errno) if (exc.errno or 0) > 0 else exc.strerror or type(exc).__name__
            upstream = f"{parts.hostname}:{port}: {why}"
        ok = store == "ok" and upstream == "ok"
        body = {"status": "ok" if ok else "degraded", "store": store, "upstream": upstream, "version": __version__}
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def _peer(self, request: web.Request) -> str:
        """The device's address: the proxy's X-Forwarded-For (its last entry) behind a proxy, else the peer."""
        if self.config.behind_proxy:
            forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
            if forwarded:
                return forwarded[:64]
        return request.remote or "?"

    async def _calls(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        self.metrics.offers += 1
        who = peer = self._peer(request)
        try:
            device, slot = await self._admit(request, peer)
            who = device.name
            call: CallRecord | None = None
            try:
                resp, call = await self._offer(request, device, start)
            finally:
                await self._finish(device, slot, call)
        except _Fail as fail:
            self._log(logging.WARNING, f"{who}: {fail.status} {fail.log_text} ({_ms(start)} ms)")
            resp = api_error(fail.status, fail.message, fail.code,
                             "relay_error" if fail.status >= 500 else "invalid_request_error", fail.headers)
        self.statuses[resp.status] += 1
        return resp

    async def _finish(self, device: Device, slot: str, call: CallRecord | None) -> None:
        """The offer is done: its limit slot released and its call recorded, in one store write; a call
        the store refuses (the device was revoked meanwhile) is hung up."""
        try:
            kept = await in_store(self.config.store, self.config.store.finish, slot, call)
        except RtflashError as exc:  # the slot expires by itself (RelayConfig.hold)
            what = "release its limit slot" + (" or record its call for `relay revoke`" if call else "")
            self._log(logging.WARNING, f"{device.name}: could not {what}: {exc}")
            return
        if call is not None and not kept:
            self.hangups.hang_up(call)

    async def _admit(self, request: web.Request, peer: str) -> tuple[Device, str]:
        """The token's device, admitted by its limits: (device, limit slot) or _Fail (401, 429, 503)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Fail(401, "missing_device_token", "send the device token as `Authorization: Bearer <token>`",
                        f"no Bearer token (from {peer})")
        store, limits, hold = self.config.store, self.config.limits, self.config.hold

        try:
            device, slot = await in_store(store, store.admit, token.strip(), limits, hold)
        except RtflashError as exc:
            raise _Fail(503, "relay_store_unreadable", "the relay cannot read its device store; try again later",
                        f"device store: {exc}") from None
        if device is None:
            raise _Fail(401, "invalid_device_token", "unknown device token: enroll the device and provision it "
                        "again", f"unknown token (from {peer})")
        if device.revoked:
            raise _Fail(401, "device_revoked", "this device has been revoked", f"revoked device {device.name} refused")
        if isinstance(slot, Refused):
            self.metrics.refusals[slot.reason] += 1
            raise _Fail(429, "device_rate_limited", f"too many calls from this device ({slot.reason} limit); "
                        f"retry in {slot.retry_after} s", f"{slot.reason} limit",
                        **{"Retry-After": str(slot.retry_after)})
        return device, slot

    async def _offer(self, request: web.Request, device: Device,
                     start: float) -> tuple[web.Response, CallRecord | None]:
        """Forward the offer: (the device's response, the call to record) or _Fail."""
        if request.content_type != "application/sdp":
            raise _Fail(415, "unsupported_content_type", f"send the SDP offer as application/sdp, not "
                        f"{request.content_type or 'no content type'}", f"content type {request.content_type!r}")
        body = await self._read_body(request)
        try:
            sdp = body.decode("utf-8")
        except UnicodeDecodeError:
            sdp = ""
        if not sdp.startswith("v=0"):
            raise _Fail(400, "invalid_offer", "the request body is not an SDP offer (it must start with v=0)",
                        f"body of {len(body)} bytes is not SDP")
        self._uses[device.name] = (device.token_sha256, now_iso())
        session = self.config.session_for(device)
        status, headers, answer, upstream_ms = await self._forward(sdp, session)
        self.metrics.upstream_ms(upstream_ms)
        if status == 201 and answer.startswith(b"v=0"):
            out = {"Location": headers["Location"]} if "Location" in headers else {}
            # what the relay itself added (total minus the upstream round trip): the bench reads it
            out["Server-Timing"] = f"relay;dur={_ms(start) - upstream_ms:.2f}, upstream;dur={upstream_ms:.2f}"
            call_id = call_id_from(headers.get("Location", ""))
            call = CallRecord(device.name, call_id, now_iso(), self.config.upstream,
                              self.config.upstream_ca) if call_id else None
            self._log(logging.INFO, f"{device.name}: 201 call {call_id or '(no Location)'} "
                      f"(model {session.get('model')}, upstream {upstream_ms:.1f} ms, total {_ms(start)} ms)")
            return web.Response(status=201, body=answer, content_type="application/sdp", headers=out), call
        return self._upstream_error(device, status, answer, upstream_ms, start), None

    async def _read_body(self, request: web.Request) -> bytes:
        cap = self.config.max_body
        if request.content_length is not None and request.content_length > cap:
            raise _Fail(413, "offer_too_large", f"the offer is over {cap} bytes", f"body of {request.content_length} "
                        f"bytes announced, cap {cap}")
        chunks: list[bytes] = []
        size = 0

        async def pull() -> None:
            nonlocal size
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    return
                size += len(chunk)
                if size > cap:
                    raise _Fail(413, "offer_too_large", f"the offer is over {cap} bytes", f"body over the {cap}-byte cap")
                chunks.append(chunk)

        try:
            if _timeout is not None:  # 3.11+: a deadline on this task, not a task of its own as wait_for's
                async with _timeout(self.config.read_timeout):
                    await pull()
            else:
                await asyncio.wait_for(pull(), self.config.read_timeout)
        except asyncio.TimeoutError:
            raise _Fail(408, "request_timeout", f"the offer did not arrive within {self.config.read_timeout:g} s",
                        f"slow client: {size} bytes in {self.config.read_timeout:g} s") from None
        return b"".join(chunks)

    async def _forward(self, sdp: str, session: dict) -> tuple[int, dict[str, str], bytes, float]:
        """POST the unified-interface form upstream; (status, headers, body, ms) or _Fail for transport errors."""
        assert self._http is not None, "Relay.start() first"
        ctype, form = call_form(sdp, session)
        t0 = time.perf_counter()
        self.metrics.upstream_requests += 1
        try:
            async with self._http.post(self.config.upstream, data=form,
                                       headers={"Authorization": f"Bearer {self.config.api_key}",
                                                "Content-Type": ctype}) as r:
                body = await r.content.read(1024 * 1024)
                return r.status, dict(r.headers), body, (time.perf_counter() - t0) * 1000
        except asyncio.TimeoutError:
            raise _Fail(504, "upstream_timeout", "the Realtime API did not answer in time; try again",
                        f"upstream timeout after {self.config.upstream_timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise _Fail(502, "upstream_unreachable", "the relay cannot reach the Realtime API; try again later",
                        f"upstream certificate not trusted ({exc.certificate_error}); check --upstream-ca") from None
        except aiohttp.ClientConnectorError as exc:
            raise _Fail(502, "upstream_unreachable", "the relay cannot reach the Realtime API; try again later",
                        f"upstream unreachable: {exc.os_error.strerror or exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise _Fail(502, "upstream_failed", "the Realtime API closed the connection; try again",
                        f"upstream failed: {type(exc).__name__}") from None

    def _upstream_error(self, device: Device, status: int, raw: bytes, upstream_ms: float, start: float) -> web.Response:
        text = self._scrub(raw.decode("utf-8", "replace"))
        try:
            body = json.loads(text)
            ok = isinstance(body, dict) and isinstance(body.get("error"), dict)
        except ValueError:
            ok = False
        if status == 201:
            body = {"error": {"message": "the Realtime API answered 201 without an SDP answer", "type": "relay_error",
                              "code": "upstream_not_sdp", "param": None}}
        elif not ok:
            body = {"error": {"message": f"the Realtime API answered HTTP {status} without a JSON error",
                              "type": "relay_error", "code": "upstream_error", "param": None}}
        out = 502 if status in (201, 401, 403) or status >= 500 else status
        code = body["error"].get("code")
        self._log(logging.WARNING, f"{device.name}: {out} upstream answered {status} ({code}; upstream {upstream_ms:.1f} ms,"
                  f" total {_ms(start)} ms)")
        return web.json_response(body, status=out, headers={"X-Rtflash-Upstream-Status": str(status)})

    def _scrub(self, text: str) -> str:
        """An upstream body without the key: the registered secret, any `sk-...` fragment, key shapes."""
        text = _KEY_FRAGMENT.sub("sk-" + redact.MASK, text)  # also the API's own `sk-abc***xyz` echo
        return redact.redact(text.replace(self.config.api_key, redact.MASK))

    def _log(self, level: int, text: str) -> None:
        log.log(level, redact.redact(text))


def call_form(sdp: str, session: dict) -> tuple[str, bytes]:
    """The create-call form as a browser's FormData sends it (two plain fields, no part Content-Type),
    built in one piece so it goes out in one write (aiohttp's FormData writes part by part)."""
    boundary = "rtflash-" + secrets.token_hex(16)
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                    for name, value in (("sdp", sdp), ("session", json.dumps(session))))
    return f"multipart/form-data; boundary={boundary}", f"{parts}--{boundary}--\r\n".encode()


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
