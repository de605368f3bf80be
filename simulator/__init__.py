"""A deterministic simulated marketplace and its publisher."""
