"""Files that are not tables, on any Hadoop file system: local disk, ``hdfs://``, ``s3a://``, ``abfss://``.

One policy for every path: it goes through Hadoop's ``FileSystem`` of the running Spark session
(the same client, credentials and configuration the Delta tables use), never through ``os`` or
``pathlib``, so a figure, a report or a raw file is read and written the same way wherever the
lakehouse lives. Writes go to a temporary name beside the target and are renamed over it, so a
reader never sees half a file (on object stores the rename is a copy: the target is still written
whole, in one PUT).
"""

from __future__ import annotations

import logging
import uuid

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def hadoop_path(spark: SparkSession, path: str):
    """(Hadoop FileSystem, Path) for ``path``."""
    p = spark._jvm.org.apache.hadoop.fs.Path(path)  # noqa: SLF001 - the way to reach Hadoop from Python
    return p.getFileSystem(spark._jsc.hadoopConfiguration()), p  # noqa: SLF001


def exists(spark: SparkSession, path: str) -> bool:
    fs, p = hadoop_path(spark, path)
    return bool(fs.exists(p))


def is_dir(spark: SparkSession, path: str) -> bool:
    fs, p = hadoop_path(spark, path)
    return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())


def list_names(spark: SparkSession, folder: str) -> list[tuple[str, str]]:
    """``(name, full path)`` of the entries of ``folder`` (empty when it does not exist), sorted."""
    fs, p = hadoop_path(spark, folder)
    if not fs.exists(p):
        return []
    return sorted((s.getPath().getName(), s.getPath().toString()) for s in fs.listStatus(p))


def size_and_time(spark: SparkSession, path: str) -> tuple[int, int] | None:
    """(bytes, modification time in ms) of a file or folder (bytes of all its files), None when absent."""
    fs, p = hadoop_path(spark, path)
    if not fs.exists(p):
        return None
    return int(fs.getContentSummary(p).getLength()), int(fs.getFileStatus(p).getModificationTime())


def data_files(spark: SparkSession, path: str) -> list[str]:
    """Data files at ``path``: the file itself, or the part files of a folder (no ``_``/``.`` files).

    Returns:
        full paths, sorted; empty when nothing is at ``path``.
    """
    fs, p = hadoop_path(spark, path)
    if not fs.exists(p):
        return []
    status = fs.getFileStatus(p)
    if not status.isDirectory():
        return [str(status.getPath().toString())]
    return sorted(s.getPath().toString() for s in fs.listStatus(p)
                  if s.isFile() and not s.getPath().getName().startswith(("_", ".")))


def read_head(spark: SparkSession, path: str, limit: int = 1 << 20) -> bytes:
    """The first ``limit`` bytes of a file, decompressed when its name says so (``.gz``, ``.bz2``, ...)."""
    jvm = spark._jvm  # noqa: SLF001
    fs, p = hadoop_path(spark, path)
    stream = fs.open(p)
    try:
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
            spark._jsc.hadoopConfiguration()).getCodec(p)  # noqa: SLF001
        raw = codec.createInputStream(stream) if codec is not None else stream
        return bytes(raw.readNBytes(int(limit)))
    finally:
        stream.close()


def read_bytes(spark: SparkSession, path: str) -> bytes:
    """A whole (small) file."""
    fs, p = hadoop_path(spark, path)
    return read_head(spark, path, int(fs.getFileStatus(p).getLen()) + 1)


def read_text(spark: SparkSession, path: str) -> str | None:
    """A small UTF-8 text file, or None when it does not exist."""
    return read_bytes(spark, path).decode("utf-8") if exists(spark, path) else None


def write_bytes(spark: SparkSession, path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` (replacing it), through a temporary file renamed over it.

    Returns:
        ``path``.
    """
    jvm = spark._jvm  # noqa: SLF001
    fs, p = hadoop_path(spark, path)
    fs.mkdirs(p.getParent())
    tmp = jvm.org.apache.hadoop.fs.Path(p.getParent(), f".{p.getName()}.{uuid.uuid4().hex}.tmp")
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()
    return move(spark, tmp.toString(), path)


def move(spark: SparkSession, source: str, target: str) -> str:
    """Move ``source`` to ``target``, replacing it.

    On local disk Hadoop keeps a ``.<name>.crc`` checksum beside each file it writes; it is removed,
    since it would make the file unreadable to Hadoop after any edit by another program.

    Returns:
        ``target``.
    """
    jvm = spark._jvm  # noqa: SLF001
    fs, src = hadoop_path(spark, source)
    dst = jvm.org.apache.hadoop.fs.Path(target)
    fs.mkdirs(dst.getParent())
    if fs.exists(dst):
        fs.delete(dst, True)
    if not fs.rename(src, dst):
        raise OSError(f"could not move {source} to {target}")
    crc = jvm.org.apache.hadoop.fs.Path(dst.getParent(), f".{dst.getName()}.crc")
    if fs.exists(crc):
        fs.delete(crc, False)
    return target


def walk(spark: SparkSession, root: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Every file under ``root`` (recursively) whose name ends with one of ``suffixes`` (any when
    empty); hidden files (``.`` or ``_``) left out. Empty when ``root`` does not exist."""
    fs, p = hadoop_path(spark, root)
    if not fs.exists(p):
        return []
    out, files = [], fs.listFiles(p, True)
    while files.hasNext():
        path = files.next().getPath()
        name = path.getName()
        if not name.startswith((".", "_")) and (not suffixes or name.endswith(suffixes)):
            out.append(path.toString())
    return sorted(out)


def write_text(spark: SparkSession, path: str, text: str) -> str:
    """Write a UTF-8 text file (replacing it)."""
    return write_bytes(spark, path, text.encode("utf-8"))


def delete(spark: SparkSession, path: str, recursive: bool = True) -> bool:
    fs, p = hadoop_path(spark, path)
    return bool(fs.delete(p, recursive)) if fs.exists(p) else False


def put(spark: SparkSession, local: str, target: str) -> str:
    """Copy a local file to ``target`` on any file system (replacing it), streamed by the JVM
    through the target's ordinary output stream."""
    jvm = spark._jvm  # noqa: SLF001
    fs, dst = hadoop_path(spark, target)
    fs.mkdirs(dst.getParent())
    source = jvm.java.io.FileInputStream(local)
    jvm.org.apache.hadoop.io.IOUtils.copyBytes(source, fs.create(dst, True), 1 << 20, True)
    return target
