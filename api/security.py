"""API keys with scopes, and a cap on request bodies.

Keys come from `LOOKGRAPH_API_KEYS`: `key1:read,events;key2:admin` (or a JSON object
`{"key1": ["read", "events"]}`). Scopes: `read` (recommendations, looks), `events` (post
events), `admin` (products, looks, erasure; implies every other scope). A request presents its
key as `X-API-Key: <key>` or `Authorization: Bearer <key>`: no or an unknown key is 401, a key
without the scope is 403.
"""

from __future__ import annotations

import hmac
import json

from fastapi import HTTPException, Request, status

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


def require(scope: str):
    """A FastAPI dependency: the request's key must carry `scope` (or admin)."""

    # async: a check this small is cheaper on the event loop than a hop to the threadpool.
    async def check(request: Request) -> str:
        keys: dict[str, frozenset[str]] = request.app.state.api_keys
        presented = request.headers.get("x-api-key")
        if presented is None:
            auth = request.headers.get("authorization", "")
            presented = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if not presented:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key (X-API-Key header)",
                                headers={"WWW-Authenticate": "Bearer"})
        for key, scopes in keys.items():
            if hmac.compare_digest(key.encode(), presented.encode()):
                if scope in scopes or "admin" in scopes:
                    return key
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the '{scope}' scope")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"})

    return check


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` with 413, declared or streamed."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _too_large(send, self.max_bytes)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
