"""Calls in progress: the relay records each call it set up; `relay revoke` hangs the device's up.

Why: media flows directly between device and OpenAI, so refusing a revoked device's next set-up leaves
a call already running (a stolen board mid-call) going for up to the API's 60-minute session limit.
The Realtime API ends a call on request: `POST /v1/realtime/calls/{call_id}/hangup` with the API key
as Bearer ("End an active Realtime API call, whether it was initiated over SIP or WebRTC. For WebRTC
sessions, reuse the call ID returned in the Location header when creating the call",
https://developers.openai.com/api/docs/api-reference/realtime-calls/hangup-call). So the relay keeps
(store.CallRecord) the call id from the create-call answer's `Location`, the device, the start and the
upstream it forwarded to, never the key; `relay revoke` (another process) finds the key where `serve`
does and hangs up each of the device's calls under that same upstream.

A call set up while the revoke runs (authenticated before it, answered after) is not missed: the store
refuses to record a call of a device revoked by then, and the relay hangs that one up itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from rtflash import redact
from rtflash.errors import RtflashError
from rtflash.relay.store import CALL_ID_RE, CallRecord, Store

HANGUP_TIMEOUT = 10.0
log = logging.getLogger("rtflash.relay")


def call_id_from(location: str) -> str | None:
    """The call id: the last path part of the create-call answer's Location (`/v1/realtime/calls/rtc_x`)."""
    last = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    return last if CALL_ID_RE.fullmatch(last) else None


def hangup_url(upstream: str, call_id: str) -> str:
    """`<create-call URL>/<call id>/hangup`: the API's path, under the base the relay forwards to."""
    parts = urlsplit(upstream)
    return urlunsplit((parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}/{call_id}/hangup", "", ""))


@dataclass(frozen=True)
class Hangup:
    """What became of one call: `done` when it is over (hung up now, or already ended)."""

    call_id: str
    done: bool
    line: str


def _unreachable(call_id: str, why: str) -> Hangup:
    return Hangup(call_id, False, f"call {call_id}: could not reach the API: {why}; the call ends when the "
                                  "device hangs up")


async def hang_up(http: aiohttp.ClientSession, call: CallRecord, api_key: str,
                  ssl_context: ssl.SSLContext | None = None) -> Hangup:
    """POST the API's hang-up for one call; never raises for a transport or API error (it is the line)."""
    cid = call.call_id
    try:
        async with http.post(hangup_url(call.upstream, cid), ssl=ssl_context or True,
                             headers={"Authorization": f"Bearer {api_key}"}) as r:
            status = r.status
            code = await _error_code(r)
    except asyncio.TimeoutError:
        return _unreachable(cid, f"no answer in {HANGUP_TIMEOUT:g} s")
    except aiohttp.ClientConnectorCertificateError as exc:
        return _unreachable(cid, f"its certificate is not trusted ({exc.certificate_error})")
    except aiohttp.ClientConnectorError as exc:
        err = exc.os_error  # errno > 0: a socket error ("Connect call failed" -> "Connection refused"); < 0: DNS
        why = os.strerror(err.errno) if (err.errno or 0) > 0 else err.strerror or str(err)
        return _unreachable(cid, f"{exc.host}:{exc.port}: {why}")
    except aiohttp.ClientError as exc:
        return _unreachable(cid, type(exc).__name__)
    if 200 <= status < 300:
        return Hangup(cid, True, f"hung up call {cid}")
    if status == 404:
        return Hangup(cid, True, f"call {cid}: already ended (404)")
    return Hangup(cid, False, f"call {cid}: the API refused the hang-up ({status}{f' {code}' if code else ''}); "
                              "the call ends when the device hangs up")


async def _error_code(r: aiohttp.ClientResponse) -> str:
    """The API error's `code` (never its message: a 401's message quotes part of the key)."""
    try:
        body = await r.json(content_type=None)
        code = body["error"]["code"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
        return code if isinstance(code, str) and code.replace("_", "").isalnum() else ""
    except (ValueError, aiohttp.ClientError):
        return ""


async def hang_up_all(calls: list[CallRecord], api_key: str) -> list[Hangup]:
    """Hang up `calls` (at once), each under the upstream and with the CA the relay used for it."""
    contexts: dict[str, ssl.SSLContext | str] = {}  # CA file -> its context, or why there is none
    for ca in {c.upstream_ca for c in calls if c.upstream_ca}:
        try:
            contexts[ca] = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            contexts[ca] = f"the relay's --upstream-ca {ca} is unusable now ({type(exc).__name__})"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HANGUP_TIMEOUT)) as http:
        async def one(call: CallRecord) -> Hangup:
            ctx = contexts.get(call.upstream_ca) if call.upstream_ca else None
            if isinstance(ctx, str):
                return _unreachable(call.call_id, ctx)
            return await hang_up(http, call, api_key, ctx)

        return list(await asyncio.gather(*(one(c) for c in calls)))


def revoke_calls(store: Store, name: str, api_key: Callable[[], str]) -> list[str]:
    """After a revoke: hang up the device's recorded calls; one line per call. Never raises: the revoke
    is already stored, and a call that cannot be hung up ends when the device hangs up. Calls that are
    over are dropped from the store; the others stay (a second `relay revoke` tries them again)."""
    try:
        calls = store.calls_of(name)
    except RtflashError as exc:
        return [f"could not read the calls in progress: {exc}"]
    if not calls:
        return [f"no call of {name} in progress (none set up through this relay in the last hour)"]
    try:
        key = api_key()
    except RtflashError as exc:
        return [f"call {c.call_id}: not hung up: {exc}; the call ends when the device hangs up" for c in calls]
    redact.register(key)
    results = asyncio.run(hang_up_all(calls, key))
    try:
        store.forget_calls(name, {r.call_id for r in results if r.done})
    except RtflashError as exc:
        results.append(Hangup("", False, f"could not update the store: {exc}"))
    return [r.line for r in results]


class CallHangups:
    """In the relay: hangs up a call whose set-up the store refused to record (server.Relay._finish:
    its device was revoked while the offer was upstream, so the revoke cannot have seen it), with the
    relay's own upstream session (`http()`), off the request path."""

    def __init__(self, api_key: str, http: Callable[[], aiohttp.ClientSession | None]) -> None:
        self.api_key, self.http = api_key, http
        self._tasks: set[asyncio.Task] = set()

    def hang_up(self, call: CallRecord) -> None:
        task = asyncio.ensure_future(self._hang_up(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hang_up(self, call: CallRecord) -> None:
        session = self.http()
        if session is None:
            return
        result = await hang_up(session, call, self.api_key)
        log.warning(redact.redact(f"{call.device}: revoked during the call's set-up; {result.line}"))

    async def drain(self) -> None:
        """Wait until every hang-up started so far is done (stop(); tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
