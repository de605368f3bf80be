"""Faust agents and timers: thin loops that drive the decision core and publish its effects."""
