"""Sign-in tokens (CONTRACT §9): what is accepted, what is refused and why."""

from __future__ import annotations

import time

import jwt
import pytest

from streams.contract.auth import AuthError, Identity, bearer, check_secret, issue, parse_ttl, verify

SECRET = "s" * 40


def test_a_token_carries_who_and_what_role() -> None:
    token = issue(SECRET, "ann", "seller", seller_id="seller-7")
    assert verify(SECRET, token) == Identity("ann", "seller", "seller-7")
    assert verify(SECRET, issue(SECRET, "ops", "service")) == Identity("ops", "service", None)


@pytest.mark.parametrize("label, token", [
    ("expired", issue(SECRET, "ann", "seller", seller_id="s", ttl_s=60, now=time.time() - 3600)),
    ("another secret", issue("x" * 40, "ann", "reviewer")),
    ("unsigned (alg none)", jwt.encode({"sub": "ann", "role": "admin", "exp": int(time.time()) + 60}, None,
                                       algorithm="none")),
    ("no role", jwt.encode({"sub": "ann", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")),
    ("an unknown role", jwt.encode({"sub": "ann", "role": "root", "exp": int(time.time()) + 60}, SECRET,
                                   algorithm="HS256")),
    ("a seller without a seller", jwt.encode({"sub": "ann", "role": "seller", "exp": int(time.time()) + 60},
                                             SECRET, algorithm="HS256")),
    ("no expiry", jwt.encode({"sub": "ann", "role": "admin"}, SECRET, algorithm="HS256")),
    ("garbage", "not.a.token"),
])
def test_a_bad_token_is_a_401(label: str, token: str) -> None:
    with pytest.raises(AuthError) as caught:
        verify(SECRET, token)
    assert caught.value.status == 401


def test_a_seller_reads_only_their_own_seller_and_staff_read_any() -> None:
    assert Identity("ann", "seller", "a").may_read_seller("a")
    assert not Identity("ann", "seller", "a").may_read_seller("b")
    for role in ("reviewer", "lead", "admin", "service"):
        assert Identity("x", role).may_read_seller("b")


def test_the_bearer_header_and_the_secret_and_ttl_are_checked() -> None:
    assert bearer("Bearer abc") == "abc"
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(AuthError):
            bearer(header)
    with pytest.raises(ValueError, match="not set"):
        check_secret(None)
    with pytest.raises(ValueError, match="shorter than 32"):
        check_secret("short")
    assert parse_ttl("8h") == 8 * 3600 and parse_ttl("30m") == 1800 and parse_ttl("90") == 90
    for bad in ("x", "-1h", "0"):
        with pytest.raises(ValueError):
            parse_ttl(bad)
    with pytest.raises(ValueError, match="seller-id"):
        issue(SECRET, "ann", "seller")


def test_the_secret_stays_out_of_the_settings_repr() -> None:
    from streams.contract.settings import load_settings

    settings = load_settings({"WARDEN_AUTH_SECRET": SECRET})
    assert settings.auth_secret == SECRET and SECRET not in repr(settings) and SECRET not in str(settings)
