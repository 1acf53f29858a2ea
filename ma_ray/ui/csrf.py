"""Cross-site request forgery protection for the UI's writes: a double-submit token. The page sets a random
token in a ``SameSite=Strict`` cookie and repeats it in each form; a write is accepted only when the form's copy
equals the cookie's (another site can make a browser send the cookie, never read it) and the request's
``Origin``, when sent, is the UI's own."""

from __future__ import annotations

import hmac
import secrets

COOKIE = "ma_ray_csrf"
FIELD = "csrf_token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_problem(cookie: str | None, submitted: str | None, origin: str | None, host: str | None) -> str | None:
    """Why a write must be refused, or None: a missing or different token, or a foreign ``Origin``."""
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        return "the form's CSRF token does not match this browser's: reload the page and try again"
    if origin is not None and host is not None and origin.split("://", 1)[-1] != host:
        return f"a write from {origin} is refused: the UI accepts writes from its own pages only"
    return None
