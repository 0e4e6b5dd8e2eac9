"""API keys with scopes, the console's sign-in sessions, and what a request body may be.

Keys come from `LOOKGRAPH_API_KEYS` (`key1:read,events;key2:admin`, or a JSON object
`{"key1": ["read", "events"]}`) and from the file `LOOKGRAPH_API_KEYS_FILE` in the same form,
which is read again whenever it changes: a key removed there is refused from the next request
on, by every worker, console sessions signed in with it included. Scopes: `read`
(recommendations, catalogue), `events` (events, outbound picks), `personal` (a shopper's
journey: their events, sessions and locations), `admin` (catalogue and rule changes, rules,
erasure; implies every other scope). A request presents its key as `X-API-Key: <key>` or
`Authorization: Bearer <key>`: no or an unknown key is 401, a key without the scope is 403,
decided before the body is read (`Gate`). A key is compared with every key in force, by
digest and in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from ..graph.limits import JSON_DEPTH_MAX

SCOPES = ("read", "events", "personal", "admin")
log = logging.getLogger("lookgraph.api")


def parse_keys(text: str | None, where: str = "LOOKGRAPH_API_KEYS") -> dict[str, frozenset[str]]:
    if not text or not text.strip():
        return {}
    if text.strip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as err:
            raise ValueError(f"{where}: not valid JSON: {err}") from None
        pairs = dict(raw)
    else:
        pairs = {}
        for item in text.replace("\n", ";").split(";"):
            if item.strip() and not item.strip().startswith("#"):
                key, _, scopes = item.strip().partition(":")
                pairs[key.strip()] = [s.strip() for s in scopes.split(",") if s.strip()]
    keys = {}
    for key, scopes in pairs.items():
        unknown = set(scopes) - set(SCOPES)
        if len(key) < 16:
            raise ValueError(f"{where}: each key needs at least 16 characters")
        if unknown or not scopes:
            raise ValueError(f"{where}: scopes must be among {', '.join(SCOPES)}, got {scopes}")
        keys[key] = frozenset(scopes)
    return keys


def fingerprint(key: str) -> str:
    """What identifies a key outside this process (a console session's record): its SHA-256."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class Keys:
    """The keys in force: the setting's, plus the keys file's as it is now (its modification
    time and size are looked at on every check, a microsecond; it is parsed again when they
    change). A keys file that stops parsing keeps the keys it had, and says so in the log."""

    def __init__(self, text: str | None, path: Path | None = None):
        self._fixed = parse_keys(text)
        self._path, self._seen, self._lock = path, None, threading.Lock()
        self._from_file: dict[str, frozenset[str]] = {}
        self._digests: list[tuple[bytes, frozenset[str]]] = []
        self._by_fingerprint: dict[str, frozenset[str]] = {}
        if path is not None:
            self._from_file = parse_keys(path.read_text("utf-8"), str(path))  # at start, a bad file is an error
            self._seen = self._stamp()
        self._index()

    def __bool__(self) -> bool:
        return bool(self._digests)

    def _stamp(self):
        try:
            found = os.stat(self._path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size, found.st_ino

    def _index(self) -> None:
        merged = {**self._from_file, **self._fixed}
        self._digests = [(hashlib.sha256(k.encode("utf-8", "surrogatepass")).digest(), s) for k, s in merged.items()]
        self._by_fingerprint = {fingerprint(k): s for k, s in merged.items()}

    def _fresh(self) -> None:
        if self._path is None:
            return
        stamp = self._stamp()
        if stamp == self._seen:
            return
        with self._lock:
            if stamp == self._seen:
                return
            try:
                self._from_file = parse_keys(self._path.read_text("utf-8"), str(self._path)) if stamp else {}
            except (OSError, ValueError) as err:
                log.error("keys file not read again, the keys read before stay in force: %s", err)
            self._seen = stamp
            self._index()

    def scopes_of(self, presented: str) -> frozenset[str] | None:
        """The presented key's scopes, or None. Every key's digest is compared (no early exit),
        each in constant time, so the time taken says nothing of which key nearly matched."""
        self._fresh()
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, scopes in self._digests:
            if hmac.compare_digest(known, digest):
                found = scopes
        return found

    def scopes_of_fingerprint(self, print_: str) -> frozenset[str] | None:
        """The scopes of the key with this fingerprint, while it is in force."""
        self._fresh()
        return self._by_fingerprint.get(print_)


def allows(scopes: frozenset[str], needed: str) -> bool:
    return needed in scopes or "admin" in scopes


SCOPE_KEY = "x-scope"
"""A route's `openapi_extra` names the scope it needs under this key; routes without one are
public (health, metrics, the documentation, the console's sign-in)."""


def scope(name: str) -> dict:
    """`openapi_extra` for a route that needs the `name` scope (shown in the OpenAPI document)."""
    assert name in SCOPES
    return {SCOPE_KEY: name}


CONSOLE = "/console"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONSOLE_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                 b"form-action 'self'; base-uri 'none'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
"""On every console answer: never framed (clickjacking), scripts from this server only, no
page kept in a shared cache."""


class Gate:
    """ASGI middleware in front of every route, in this order, so that nothing is parsed for a
    caller who may not call: (1) the key, `X-API-Key: <key>` or `Authorization: Bearer <key>`,
    or on console pages the console's session cookie, against the scope the matched route
    declares (401 without a known key, 403 without the scope); (2) for a console form or
    htmx request (POST, PUT, PATCH, DELETE under `/console`): the browser's `Origin` and
    `Sec-Fetch-Site` must be this server's own, and with a session cookie the session's CSRF
    token must come back (`X-CSRF-Token` header or `csrf_token` field), else 403; (3) the body,
    read whole up to `max_bytes` (413 beyond, whether declared by Content-Length or streamed in
    chunks); (4) a body FastAPI would parse as JSON (declared JSON, or no content type) must be
    at most `JSON_DEPTH_MAX` deep, counted before anything parses it, and strict JSON: NaN,
    Infinity and lone UTF-16 surrogates, which Python's parser accepts, are refused with 422
    naming the field. Malformed JSON is left to FastAPI's own 422. Console answers carry
    `CONSOLE_HEADERS`."""

    def __init__(self, app, routes, keys: Keys, sessions, max_bytes: int):
        self.app, self.routes, self.keys, self.sessions, self.max_bytes = app, routes, keys, sessions, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        console = scope["path"] == CONSOLE or scope["path"].startswith(CONSOLE + "/")
        if console:
            send = _with_headers(send, CONSOLE_HEADERS)
        headers = dict(scope["headers"])
        presented = _presented_key(headers)
        session = None
        if console and not presented:
            token = _cookie(headers.get(b"cookie", b"").decode("latin-1"), self.sessions.cookie)
            session = await run_in_threadpool(self.sessions.resolve, token) if token else None  # a store read
            scope.setdefault("state", {})["console"] = session
        needed = self._scope_of(scope)
        if needed is not None:
            refusal = self._refusal(presented, session, needed)
            if refusal is not None:
                if console and refusal[0] == 401:  # a person: to the sign-in page
                    return await send_redirect(send, f"{CONSOLE}/login")
                return await _json(send, *refusal)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
        body, more = b"", scope["method"] in UNSAFE
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
        if console and scope["method"] in UNSAFE and not presented:
            forgery = _forgery(scope, headers, body, session)
            if forgery is not None:
                return await _json(send, 403, {"detail": forgery})
        content_type = headers.get(b"content-type", b"")
        if body and (b"json" in content_type or not content_type):  # what FastAPI parses as JSON
            problem = _too_deep(body) or _not_strict_json(body)
            if problem is not None:
                return await _json(send, 422, {"detail": [problem]})
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _scope_of(self, scope) -> str | None:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return (getattr(route, "openapi_extra", None) or {}).get(SCOPE_KEY)
        return None

    def _refusal(self, presented: str, session, needed: str) -> tuple[int, dict, list] | None:
        challenge = [(b"www-authenticate", b"Bearer")]
        if presented:
            scopes = self.keys.scopes_of(presented)
            if scopes is None:
                return 401, {"detail": "unknown API key"}, challenge
        elif session is not None:
            scopes = session.scopes
        else:
            return 401, {"detail": "missing API key (X-API-Key header)"}, challenge
        if allows(scopes, needed):
            return None
        return 403, {"detail": f"this API key lacks the '{needed}' scope"}, []


def _presented_key(headers: dict) -> str:
    presented = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if not presented:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        presented = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return presented


def own_origin(scope) -> str:
    """This server's origin as the browser addressed it (scheme, Host header)."""
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}"


def _forgery(scope, headers: dict, body: bytes, session) -> str | None:
    """Why a console write looks forged, or None. A page on another origin (another port of
    this host is one: SameSite cookies do not tell ports apart) sends its own `Origin`; a
    form it submits cannot know the session's CSRF token."""
    origin = headers.get(b"origin")
    if origin is not None and origin.decode("latin-1") != own_origin(scope):
        return "cross-origin request refused (Origin is not this server)"
    fetch_site = headers.get(b"sec-fetch-site")
    if fetch_site is not None and fetch_site not in (b"same-origin", b"none"):
        return "cross-site request refused (Sec-Fetch-Site)"
    if scope["path"] == f"{CONSOLE}/login":
        return None  # no session yet: the origin checks above guard the sign-in
    if session is None:
        return "sign in to the console first (no session)"
    token = headers.get(b"x-csrf-token", b"").decode("latin-1")
    if not token and headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
        token = next((v for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
                      if k == "csrf_token"), "")
    if not hmac.compare_digest(token.encode("utf-8", "replace"), session.csrf.encode()):
        return "missing or wrong CSRF token (reload the page)"
    return None


_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|"[\s\S]*')
"""A JSON string, or from a quote never closed to the end of the body (so that the search
stays linear in the body's length whatever the quotes and backslashes in it)."""
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def _too_deep(body: bytes) -> dict | None:
    """A body nested deeper than `JSON_DEPTH_MAX`, found by counting the brackets outside
    strings before anything parses it (Python's parser recurses once a level, and a few
    thousand levels exhaust its stack)."""
    if body.count(b"[") + body.count(b"{") <= JSON_DEPTH_MAX:
        return None
    brackets = np.frombuffer(_JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if brackets.size and np.cumsum(np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)).max() > JSON_DEPTH_MAX:
        return {"type": "json_too_deep", "loc": ["body"], "input": None,
                "msg": f"JSON nested over {JSON_DEPTH_MAX} levels deep"}
    return None


def _not_strict_json(body: bytes) -> dict | None:
    """The first value of `body` that strict JSON cannot carry, as a FastAPI validation error."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        return {"type": "json_invalid", "loc": ["body"], "msg": "the body is not UTF-8 text", "input": None}
    except (ValueError, RecursionError):  # malformed: FastAPI says so in its own words
        return None
    stack: list[tuple[list, object]] = [(["body"], document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return {"type": "finite_number", "loc": where, "msg": "NaN and Infinity are not JSON numbers",
                    "input": str(value)}
        if isinstance(value, str) and _SURROGATE.search(value):
            return {"type": "string_unicode", "loc": where, "msg": "a lone UTF-16 surrogate is not text",
                    "input": value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")}
        if isinstance(value, dict):
            for name, item in value.items():
                if _SURROGATE.search(name):
                    return {"type": "string_unicode", "loc": where, "msg": "a lone UTF-16 surrogate in a key",
                            "input": name.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")}
                stack.append(([*where, name], item))
        elif isinstance(value, list):
            stack.extend(([*where, i], item) for i, item in enumerate(value))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip()
    return ""


def _with_headers(send, extra: list):
    async def sending(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)
    return sending


async def send_redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _json(send, status: int, content: dict, headers: list | None = None) -> None:
    body = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in console session, as the store keeps it and the key it was opened with allows."""

    token_hash: str
    scopes: frozenset[str]
    csrf: str
