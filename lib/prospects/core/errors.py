"""Errors a job reports as one line (``<job> failed: <reason>``), defined once for every package.

The command-line layer (:mod:`prospects.cli`) maps them to exit codes: :class:`ConfigError` and
:class:`DictionaryError` are configuration errors (exit 2, reported before any Spark job runs);
every other error here means the inputs or the state cannot be processed (exit 1). Messages name
the file, table, column or key at fault.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the source and the key."""


class DictionaryError(ValueError):
    """The column dictionary in conf is invalid; the message names the record and the field."""


class JobError(RuntimeError):
    """A job stopped on bad input; the message is the one-line reason for the operator."""


class IngestError(JobError):
    """The inputs cannot be ingested at all (missing file, empty file, wrong header, encoding)."""


class TrainingInputError(JobError, ValueError):
    """The training table cannot be trained on; the message names the table, column and problem."""


class RegistryError(JobError, LookupError):
    """No registered model matches the request; the message says what exists."""
