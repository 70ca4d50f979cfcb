"""Machine learning: feature stages (pyspark.ml), training, evaluation and the model registry."""
