"""`warden bench`: Warden measured against the ceilings of its own stack."""
