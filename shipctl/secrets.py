"""Keep the API key out of every byte shipctl writes.

`scrub` is applied at the edges that could carry a key by accident: error messages from the SDK or requests,
tracebacks under --debug, and anything we store in the journal.
"""

from __future__ import annotations

import os
import re

# EasyPost keys: EZAK... (production) and EZTK... (test), followed by hex/alphanumerics.
_KEY_PATTERN = re.compile(r"EZ[AT]K[0-9A-Za-z]{8,}")
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
REDACTED = "[redacted]"
# Keys that came from elsewhere than the environment (the keychain, a key_command): scrubbed like EASYPOST_API_KEY.
_remembered: set[str] = set()


def remember(secret: str) -> None:
    """Scrub `secret` from everything from now on (a key read from the keychain or printed by a key_command)."""
    if len(secret.strip()) >= 4:
        _remembered.add(secret.strip())


def scrub(text: str) -> str:
    key = os.environ.get("EASYPOST_API_KEY", "")
    # The key goes out trimmed (target.py strips it), so that is the form a server echoes back; the
    # untrimmed one too, for anything that quotes the environment (longest first, so that one goes whole).
    secrets = sorted({s for s in (key, key.strip()) if len(s.strip()) >= 4} | _remembered, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    text = _KEY_PATTERN.sub(REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)
