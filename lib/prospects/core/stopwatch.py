"""Seconds per step of a stage, for its summary and log."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Stopwatch:
    """Seconds per step of a stage, logged as each step ends."""

    def __init__(self, stage: str):
        self.stage = stage
        self.started = self.last = time.time()
        self.seconds: dict[str, float] = {}

    def tick(self, step: str) -> None:
        now = time.time()
        self.seconds[step] = round(now - self.last, 2)
        self.last = now
        log.info("%s: %s in %.1fs", self.stage, step, self.seconds[step])

    def total(self) -> float:
        return round(time.time() - self.started, 2)
