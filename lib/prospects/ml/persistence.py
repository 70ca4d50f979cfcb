"""Saving and loading models: metadata as files, not Spark jobs.

pyspark.ml's ``DefaultParamsWriter`` writes a stage's one line of metadata with a Spark job
(``createDataFrame(...).write.text``: a task, an output committer, a ``_SUCCESS`` file), and its
reader reads it back with another (``read.text(...).first()``). A saved model holds several custom
stages, so every model save and load paid that many jobs; on HDFS or an object store each also pays
the committer's renames. :class:`FileParams` writes the same JSON, in the same place
(``<stage>/metadata/part-00000``), through :mod:`prospects.core.storage`, and reads it back the
same way. The layout stays the one pyspark.ml reads: ``DefaultParamsReader`` loads these stages,
and :class:`FileParams` loads stages saved by ``DefaultParamsWriter`` (models of earlier versions).

A whole model goes the same way: :func:`save_model` and :func:`load_model` keep pyspark.ml's layout
of a pipeline with Python stages (``PipelineModel.load`` reads what :func:`save_model` writes), but
read and write the pipeline's metadata as files; pyspark's own reader would also run a job per stage
only to learn the stage's class. Spark's built-in stages and XGBoost's are still saved and loaded
by their own writers and readers.
"""

from __future__ import annotations

import importlib

from pyspark.ml import PipelineModel
from pyspark.ml.pipeline import PipelineSharedReadWrite
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsReader, DefaultParamsWritable, DefaultParamsWriter
from pyspark.sql import SparkSession

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


def read_metadata(spark: SparkSession, path: str) -> dict:
    """The metadata of the stage or pipeline saved at ``path`` (by pyspark.ml's writers or ours)."""
    folder = join_path(path, "metadata")
    files = storage.data_files(spark, folder)
    if not files:
        raise FileNotFoundError(f"no saved metadata in {folder}")
    return DefaultParamsReader._parseMetaData(storage.read_text(spark, files[0]))  # noqa: SLF001 - the JSON's parser


class _FileParamsReader(DefaultParamsReader):
    def load(self, path: str):
        metadata = read_metadata(self.sparkSession, path)
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


def save_model(model: PipelineModel, path: str) -> str:
    """Save ``model`` at ``path``, replacing what is there; a pipeline of Spark's stages only is
    saved by the JVM's writer, as ``model.write()`` would."""
    if PipelineSharedReadWrite.checkStagesForJava(model.stages):
        model.write().overwrite().save(path)
        return path
    spark = SparkSession.active()
    storage.delete(spark, path)
    params = {"stageUids": [stage.uid for stage in model.stages], "language": "Python"}
    metadata = DefaultParamsWriter._get_metadata_to_save(model, spark, paramMap=params)  # noqa: SLF001
    storage.write_text(spark, join_path(path, "metadata", METADATA_FILE), metadata + "\n")
    for index, stage in enumerate(model.stages):
        stage.write().session(spark).save(_stage_path(path, index, stage.uid, len(model.stages)))
    return path


def load_model(path: str) -> PipelineModel:
    """The PipelineModel saved at ``path`` (by :func:`save_model` or by pyspark.ml)."""
    spark = SparkSession.active()
    metadata = read_metadata(spark, path)
    if metadata["paramMap"].get("language") != "Python":
        return PipelineModel.load(path)
    uids = metadata["paramMap"]["stageUids"]
    stages = []
    for index, uid in enumerate(uids):
        stage_path = _stage_path(path, index, uid, len(uids))
        stages.append(_python_class(read_metadata(spark, stage_path)["class"]).load(stage_path))
    model = PipelineModel(stages)
    model._resetUid(metadata["uid"])  # noqa: SLF001 - as pyspark's reader does
    return model


def _stage_path(path: str, index: int, uid: str, count: int) -> str:
    """Where pyspark.ml keeps stage ``index`` of a pipeline: ``stages/<index, zero-padded>_<uid>``."""
    return join_path(path, "stages", f"{str(index).zfill(len(str(count)))}_{uid}")


def _python_class(name: str) -> type:
    """The Python class of a saved stage's class name (a JVM stage's Python wrapper)."""
    module, _, cls = name.replace("org.apache.spark", "pyspark", 1).rpartition(".")
    return getattr(importlib.import_module(module), cls)
