"""Sign-in tokens (CONTRACT §9): HS256 JWTs with `sub`, `role`, `seller_id` and `exp`, and
who may see what. Plain functions over PyJWT; the HTTP handlers call them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ROLES = ("seller", "reviewer", "lead", "admin", "service")
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash are weak (RFC 7518 §3.2)


class AuthError(Exception):
    """A request without a usable token (401), or a token without the right (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Identity:
    """Who is asking, as the token says."""

    sub: str
    role: str
    seller_id: str | None = None

    def may_read_seller(self, seller_id: str) -> bool:
        """A seller reads only their own seller's data; staff and services read any."""
        if self.role == "seller":
            return self.seller_id == seller_id
        return self.role in ("reviewer", "lead", "admin", "service")


    @property
    def decides_reviews(self) -> bool:
        """Reviewers, leads and admins decide suspensions, bans and appeals."""
        return self.role in ("reviewer", "lead", "admin")

    @property
    def reassigns(self) -> bool:
        """Only leads and admins reassign cases or act in bulk."""
        return self.role in ("lead", "admin")


def require_seller(identity: Identity, seller_id: str) -> None:
    """AuthError(403) unless `identity` may read `seller_id`'s data."""
    if not identity.may_read_seller(seller_id):
        raise AuthError(403, f"{identity.sub} may not see seller {seller_id!r}")


def require_reviewer(identity: Identity) -> None:
    """AuthError(403) unless `identity` decides reviews."""
    if not identity.decides_reviews:
        raise AuthError(403, f"{identity.sub} ({identity.role}) may not review enforcement actions")


def check_secret(secret: str | None) -> str:
    """The secret, or ValueError saying what is wrong with it."""
    if not secret:
        raise ValueError("WARDEN_AUTH_SECRET is not set: sign-in tokens cannot be checked "
                         "(`warden up` makes one; elsewhere set it to 32 or more random bytes)")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"WARDEN_AUTH_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def issue(secret: str, sub: str, role: str, seller_id: str | None = None, ttl_s: float = 8 * 3600,
          now: float | None = None) -> str:
    """A signed token for `sub` in `role` (a seller's names their seller), valid `ttl_s`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "seller" and not seller_id:
        raise ValueError("a seller's token needs --seller-id")
    if ttl_s <= 0:
        raise ValueError("the token's lifetime must be positive")
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"sub": sub, "role": role, "iat": int(issued), "exp": int(issued + ttl_s)}
    if seller_id:
        claims["seller_id"] = seller_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Identity:
    """The identity a token carries, or AuthError(401): unsigned by `secret`, another
    algorithm, expired, or missing a claim."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "role", "exp"]})
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"the token is not valid ({exc})") from None
    role = claims.get("role")
    if role not in ROLES:
        raise AuthError(401, "the token names no known role")
    seller_id = claims.get("seller_id")
    if role == "seller" and not isinstance(seller_id, str):
        raise AuthError(401, "a seller's token names no seller")
    return Identity(str(claims["sub"]), role, seller_id if isinstance(seller_id, str) else None)


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or AuthError(401)."""
    if not header:
        raise AuthError(401, "sign-in needed: send Authorization: Bearer <token> (`warden token` makes one)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "the Authorization header must be: Bearer <token>")
    return token.strip()


def parse_ttl(text: str) -> float:
    """`8h`, `30m`, `45s`, `2d` or a number of seconds, as seconds; ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    try:
        value = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise ValueError(f"--ttl {text!r}: give a number with s, m, h or d (e.g. 8h)") from None
    if value <= 0:
        raise ValueError(f"--ttl {text!r} must be positive")
    return value
