"""Who is asking: a Bearer token, or the session cookie a sign-in link set (CONTRACT §9);
and the CSRF token a cookie-signed-in form must carry. Both are derived from the one
secret: no session store to lose or share between replicas."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from aiohttp import web

from streams.contract.auth import AuthError, Identity, bearer, verify

COOKIE = "warden_session"
CSRF_FIELD = "csrf_token"


def session_of(request: web.Request) -> str | None:
    """The token the session cookie holds, if any."""
    return request.cookies.get(COOKIE) or None


def identify(request: web.Request, secret: str) -> Identity:
    """The identity of the request's Bearer token, else of its session cookie; AuthError(401)."""
    header = request.headers.get("Authorization")
    if header:
        return verify(secret, bearer(header))
    token = session_of(request)
    if token is None:
        raise AuthError(401, "sign-in needed")
    return verify(secret, token)


def csrf_token(secret: str, session: str) -> str:
    """The CSRF token of a session: an HMAC of the session's token, so it changes with each
    sign-in and cannot be made without the secret."""
    return hmac.new(secret.encode(), b"csrf\x1f" + session.encode(), hashlib.sha256).hexdigest()


def check_csrf(request: web.Request, secret: str, submitted: str | None) -> None:
    """AuthError(403) when a cookie-signed-in change lacks its session's CSRF token. A
    request with a Bearer token carries no cookie a browser would add on its own: exempt."""
    if request.headers.get("Authorization"):
        return
    session = session_of(request)
    if session is None or not submitted or not hmac.compare_digest(csrf_token(secret, session), submitted):
        raise AuthError(403, "the form's CSRF token is missing or does not match this session: reload the page")


def signin_location(request: web.Request) -> str:
    """Where a page asked without sign-in sends the browser: the sign-in page, then back."""
    return f"/signin?next={quote(request.path_qs, safe='')}"


def safe_next(target: str | None, default: str) -> str:
    """A redirect target after sign-in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
