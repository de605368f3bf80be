"""Helpers shared by the test modules: events, outputs and pages, the broker, the reference."""
