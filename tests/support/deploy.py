"""The routes the services declare, read from their sources."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worker_routes() -> set[str]:
    return set(re.findall(r'@app\.page\("([^"]+)"\)', (ROOT / "agents/serve_api.py").read_text()))


def web_routes() -> set[str]:
    return set(re.findall(r'add_get\("([^"{]+)"', (ROOT / "web/server.py").read_text()))
