"""The live feed of `make run`."""
