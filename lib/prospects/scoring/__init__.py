"""Scoring every sales region: scores, summaries, segments, actions, campaign list and drift."""
