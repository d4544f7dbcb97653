"""Checkpoints: safe reading, the official key layout, the frozen encoders the
checkpoint carries, and narrow weight storage."""
