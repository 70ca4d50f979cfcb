"""Saving and loading the custom feature stages: their Params as one metadata file, no Spark job.

pyspark.ml's ``DefaultParamsWriter`` writes a stage's one line of metadata with a Spark job
(``createDataFrame(...).write.text``: a task, an output committer, a ``_SUCCESS`` file), and its
reader reads it back with another (``read.text(...).first()``). A saved model holds several custom
stages, so every model save and load paid that many jobs; on HDFS or an object store each also pays
the committer's renames. :class:`FileParams` writes the same JSON, in the same place
(``<stage>/metadata/part-00000``), through :mod:`prospects.core.storage`, and reads it back the
same way. The layout stays the one pyspark.ml reads: ``DefaultParamsReader`` loads these stages,
and :class:`FileParams` loads stages saved by ``DefaultParamsWriter`` (models of earlier versions).
"""

from __future__ import annotations

from pyspark.ml.util import DefaultParamsReadable, DefaultParamsReader, DefaultParamsWritable, DefaultParamsWriter

from prospects.core import storage
from prospects.core.config import join_path

METADATA_FILE = "part-00000"


class _FileParamsWriter(DefaultParamsWriter):
    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        folder = join_path(path, "metadata")
        if storage.exists(spark, folder):   # the stock writer's behaviour: replacing takes write().overwrite()
            raise FileExistsError(f"{folder} already exists: save with write().overwrite() to replace it")
        metadata = DefaultParamsWriter._get_metadata_to_save(self.instance, spark)  # noqa: SLF001 - its JSON
        storage.write_text(spark, join_path(folder, METADATA_FILE), metadata + "\n")


class _FileParamsReader(DefaultParamsReader):
    def load(self, path: str):
        spark = self.sparkSession
        folder = join_path(path, "metadata")
        files = storage.data_files(spark, folder)
        if not files:
            raise FileNotFoundError(f"no stage metadata in {folder}")
        metadata = DefaultParamsReader._parseMetaData(storage.read_text(spark, files[0]))  # noqa: SLF001
        instance = self.cls()
        instance._resetUid(metadata["uid"])  # noqa: SLF001 - as DefaultParamsReader.load does
        DefaultParamsReader.getAndSetParams(instance, metadata)
        return instance


class FileParams(DefaultParamsReadable, DefaultParamsWritable):
    """Mixin of a stage whose state is all in JSON Params: saved and loaded without a Spark job."""

    def write(self) -> DefaultParamsWriter:
        return _FileParamsWriter(self)

    @classmethod
    def read(cls) -> DefaultParamsReader:
        return _FileParamsReader(cls)
