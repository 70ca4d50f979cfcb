"""The one figure writer: matplotlib figures saved as PNG next to the tables, on any file system.

A figure is rendered to memory and written through :mod:`prospects.core.storage`, so it lands on
local disk, HDFS or an object store alike (``paths.reports``), never in a local folder named after
a URI.
"""

from __future__ import annotations

import io
import logging

from pyspark.sql import SparkSession

from prospects.core import storage

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

    Returns:
        ``path``.
    """
    buffer = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    pyplot().close(fig)
    storage.write_bytes(spark, path, buffer.getvalue())
    log.info("figure %s", path)
    return path
