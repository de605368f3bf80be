"""The embedded stack for development, demos and tests: Tansu, Redis, worker processes."""
