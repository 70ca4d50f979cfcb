"""Raw files -> bronze Delta tables, a quarantine for every rejected record, and a run log."""
