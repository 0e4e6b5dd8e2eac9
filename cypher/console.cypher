// The merchandiser console's sign-in sessions: operational records, never part of the graph
// that is trained on or recommended from. A session is found by the SHA-256 of its cookie's
// token (the token itself is stored nowhere), and names the API key it was opened with by
// that key's SHA-256, so that a key taken out of force ends its sessions at the next request.

// Open a session, and forget the sessions that expired (at most a few at a time: sign-ins are rare).
// name: open_session
OPTIONAL MATCH (old:ConsoleSession)
WHERE old.expires_at <= $now
WITH collect(old)[..100] AS expired
FOREACH (old IN expired | DELETE old)
CREATE (s:ConsoleSession {token_hash: $token_hash, key_fingerprint: $key_fingerprint, csrf: $csrf,
                          expires_at: $expires_at})
RETURN s.token_hash AS token_hash;

// name: session
MATCH (s:ConsoleSession {token_hash: $token_hash})
WHERE s.expires_at > $now
RETURN s.key_fingerprint AS key_fingerprint, s.csrf AS csrf;

// name: close_session
MATCH (s:ConsoleSession {token_hash: $token_hash})
DELETE s;
