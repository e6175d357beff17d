"""`rtflash relay`: the device never holds the OpenAI API key.

A device posts its SDP offer to the relay with its own per-device token as Bearer; the relay checks
the token (store.py: hashes only; SQLite or PostgreSQL, sqlstore.py), applies per-device limits held in
the store (limits.py), adds the session configuration from rtflash.toml (config.py) and the real key, forwards the offer to the Realtime API's
`POST /v1/realtime/calls` in its "unified interface" form (multipart `sdp` + `session`), and returns
the SDP answer (server.py). Media then flows directly between the device and OpenAI: the relay is only
in the call set-up path, so it records each call (calls.py) for `relay revoke` to hang up through the
API; connection deadlines (conn.py) bound what a client may take before its request is in.

store, limits and config import no third-party package; server, calls and conn need aiohttp (a runtime
dependency); the PostgreSQL store needs psycopg 3 (the `relay-pg` extra), imported only when used.
metrics.py renders /metrics.
"""
