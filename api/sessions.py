"""The console's sign-in sessions, kept in the store so that every worker agrees on them.

Signing in with an API key opens a session: the browser gets a random token in an HttpOnly,
SameSite=Strict cookie for `/console` only (`Secure` when the console is served over TLS), the
store keeps the token's SHA-256, the key's fingerprint, a CSRF token and an expiry. The key
itself is kept nowhere. Each console request finds its session by the token and takes the
scopes of the key it was opened with, as that key is in force now: signing out, expiry, or
the key's removal from the keys file ends the session at the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from ..graph.store import GraphStore
from .security import ConsoleSession, Keys, fingerprint

COOKIE = "lookgraph_console"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class ConsoleSessions:
    cookie = COOKIE

    def __init__(self, store: GraphStore, keys: Keys, ttl_seconds: float, clock=time.time,
                 secure_cookie: bool | None = None):
        self.store, self.keys, self.ttl, self.clock, self.secure_cookie = store, keys, ttl_seconds, clock, secure_cookie

    def open(self, key: str) -> tuple[str, ConsoleSession] | None:
        """A new session for `key` (token, session), or None when the key is not in force."""
        scopes = self.keys.scopes_of(key)
        if scopes is None:
            return None
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock()
        self.store.open_console_session(_hash(token), fingerprint(key), csrf, now + self.ttl, now)
        return token, ConsoleSession(_hash(token), scopes, csrf)

    def resolve(self, token: str) -> ConsoleSession | None:
        found = self.store.console_session(_hash(token), self.clock())
        if found is None:
            return None
        scopes = self.keys.scopes_of_fingerprint(found[0])
        return ConsoleSession(_hash(token), scopes, found[1]) if scopes is not None else None

    def close(self, token: str) -> None:
        self.store.close_console_session(_hash(token))

    def set_cookie(self, response, token: str, https: bool) -> None:
        secure = https if self.secure_cookie is None else self.secure_cookie
        response.set_cookie(COOKIE, token, max_age=int(self.ttl), httponly=True, samesite="strict",
                            path="/console", secure=secure)

    def clear_cookie(self, response, https: bool) -> None:
        secure = https if self.secure_cookie is None else self.secure_cookie
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=secure)
