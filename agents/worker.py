"""Everything a worker runs: importing this module registers every agent, timer and page."""

from agents import process_events, serve_api, sweep_deadlines  # noqa: F401
from streams.app import app

__all__ = ["app"]
