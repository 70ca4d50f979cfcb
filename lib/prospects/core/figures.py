"""The one figure writer: matplotlib figures saved as PNG next to the tables, on any file system.

A figure is rendered to memory and written through :mod:`prospects.core.storage`, so it lands on
local disk, HDFS or an object store alike (``paths.reports``), never in a local folder named after
a URI.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from prospects.core import storage
from prospects.core.config import join_path

log = logging.getLogger(__name__)
DPI = 110


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(spark: SparkSession, fig, path: str, tight: bool = True) -> str:
    """Write ``fig`` as a PNG at ``path`` (local, ``hdfs://``, ``s3a://``) and close it.

    Args:
        tight: crop to the drawn area (``bbox_inches="tight"``); else the figure's own size.

    Returns:
        ``path``.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    storage.write_bytes(spark, path, buffer.getvalue())
    log.info("figure %s", path)
    return path


@dataclass(frozen=True)
class Folder:
    """A folder of figures and reports next to the tables (``reports/<run_id>/<stage>``), on any
    file system: what a stage writes that is not a table goes through here."""

    spark: SparkSession
    path: str

    def file(self, name: str) -> str:
        return join_path(self.path, name)

    def save(self, fig, name: str, tight: bool = True) -> str:
        """``fig`` as ``<folder>/<name>`` (PNG). Returns the full path."""
        return save(self.spark, fig, self.file(name), tight)

    def write_text(self, name: str, text: str) -> str:
        """A UTF-8 text file ``<folder>/<name>``. Returns the full path."""
        return storage.write_text(self.spark, self.file(name), text)
