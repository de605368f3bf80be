"""What the `warden` commands share: the user's mistakes, the settings, quick checks."""

from __future__ import annotations

from pathlib import Path

from stack.embedded import port_open
from streams.contract.settings import Settings, load_settings

STATE_DIR = Path(".warden")
FAUST_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error", "critical": "crit"}


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def settings() -> Settings:
    return load_settings()


def check_secret_set(settings: Settings) -> None:
    """UserError unless WARDEN_AUTH_SECRET is usable (a worker and the web service need it)."""
    from streams.contract.auth import check_secret

    try:
        check_secret(settings.auth_secret)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_policy(settings: Settings) -> None:
    from rules.policy import load_policy

    load_policy(settings.policy_path)


def broker_reachable(servers: str) -> bool:
    for server in servers.split(","):
        host, _, port = server.rpartition(":")
        if port_open(host, int(port), timeout=1.0):
            return True
    return False
