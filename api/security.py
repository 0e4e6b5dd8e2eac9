"""API keys with scopes, and a cap on request bodies.

Keys come from `LOOKGRAPH_API_KEYS`: `key1:read,events;key2:admin` (or a JSON object
`{"key1": ["read", "events"]}`). Scopes: `read` (recommendations, looks), `events` (post
events), `admin` (products, looks, erasure; implies every other scope). A request presents its
key as `X-API-Key: <key>` or `Authorization: Bearer <key>`: no or an unknown key is 401, a key
without the scope is 403, decided before the body is read (`Gate`).
"""

from __future__ import annotations

import hmac
import json
import math
import re

from starlette.routing import Match

SCOPES = ("read", "events", "admin")


def parse_keys(text: str | None) -> dict[str, frozenset[str]]:
    if not text or not text.strip():
        return {}
    if text.strip().startswith("{"):
        raw = json.loads(text)
        pairs = {k: v for k, v in raw.items()}
    else:
        pairs = {}
        for item in text.split(";"):
            if item.strip():
                key, _, scopes = item.strip().partition(":")
                pairs[key.strip()] = [s.strip() for s in scopes.split(",") if s.strip()]
    keys = {}
    for key, scopes in pairs.items():
        unknown = set(scopes) - set(SCOPES)
        if len(key) < 16:
            raise ValueError("LOOKGRAPH_API_KEYS: each key needs at least 16 characters")
        if unknown or not scopes:
            raise ValueError(f"LOOKGRAPH_API_KEYS: scopes must be among {', '.join(SCOPES)}, got {scopes}")
        keys[key] = frozenset(scopes)
    return keys


COOKIE = "lookgraph_key"
"""The console's sign-in: the key in an HttpOnly, SameSite=Strict cookie, for `/console` only."""
SCOPE_KEY = "x-scope"
"""A route's `openapi_extra` names the scope it needs under this key; routes without one are
public (health, metrics, the documentation)."""


def scope(name: str) -> dict:
    """`openapi_extra` for a route that needs the `name` scope (shown in the OpenAPI document)."""
    assert name in SCOPES
    return {SCOPE_KEY: name}


class Gate:
    """ASGI middleware in front of every route, in this order, so that nothing is parsed for a
    caller who may not call: (1) the key, `X-API-Key: <key>` or `Authorization: Bearer <key>`,
    against the scope the matched route declares (401 without a known key, 403 without the
    scope); (2) the body, read whole up to `max_bytes` (413 beyond, whether declared by
    Content-Length or streamed in chunks); (3) a JSON body must be strict JSON: NaN, Infinity
    and lone UTF-16 surrogates, which Python's parser accepts, are refused with 422 naming the
    field. Malformed JSON is left to FastAPI's own 422."""

    def __init__(self, app, routes, keys: dict[str, frozenset[str]], max_bytes: int):
        self.app, self.routes, self.keys, self.max_bytes = app, routes, keys, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        needed = self._scope_of(scope)
        if needed is not None:
            refusal = self._refusal(scope, needed)
            if refusal is not None:
                if scope["path"].startswith("/console") and refusal[0] == 401:  # a person: to the sign-in page
                    return await send_redirect(send, "/console/login")
                return await _json(send, *refusal)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
        body, more = b"", scope["method"] in ("POST", "PUT", "PATCH", "DELETE")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
        if body and b"json" in headers.get(b"content-type", b""):
            problem = _not_strict_json(body)
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

    def _refusal(self, scope, needed: str) -> tuple[int, dict, list] | None:
        headers = dict(scope["headers"])
        presented = headers.get(b"x-api-key", b"").decode("latin-1").strip()
        if not presented:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            presented = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not presented and scope["path"].startswith("/console"):
            presented = _cookie(headers.get(b"cookie", b"").decode("latin-1"), COOKIE)
        challenge = [(b"www-authenticate", b"Bearer")]
        if not presented:
            return 401, {"detail": "missing API key (X-API-Key header)"}, challenge
        for key, scopes in self.keys.items():
            if hmac.compare_digest(key.encode(), presented.encode("latin-1")):
                if needed in scopes or "admin" in scopes:
                    return None
                return 403, {"detail": f"this API key lacks the '{needed}' scope"}, []
        return 401, {"detail": "unknown API key"}, challenge


def _not_strict_json(body: bytes) -> dict | None:
    """The first value of `body` that strict JSON cannot carry, as a FastAPI validation error."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        return {"type": "json_invalid", "loc": ["body"], "msg": "the body is not UTF-8 text", "input": None}
    except ValueError:  # malformed: FastAPI says so in its own words
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
