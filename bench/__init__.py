"""Benchmark of the product against single-machine references: not imported by the runtime."""
