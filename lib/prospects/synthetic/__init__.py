"""Synthetic operator user bases in the competition format, with their known label probabilities."""
