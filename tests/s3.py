"""An S3-compatible server on 127.0.0.1 for the tests: moto's server mode (PyPI ``moto[server]``).

Started in its own process on a free port, ended by its process id. Clients reach it the way they
reach any S3 endpoint: Hadoop's S3A connector (``hadoop-aws`` 3.5.0 and the AWS SDK bundle, fetched
by ``make setup``) with path-style access and credentials from the environment (the
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` the server accepts; never in conf files), and
Spark-free readers (``deltalake``, ``boto3``) with the same endpoint.

    with S3Server(tmp_path / "s3") as s3:
        s3.create_bucket("lake")
        spark_settings = s3.spark_conf()    # spark.hadoop.fs.s3a.* for a session or spark-submit
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.cluster import START_PATIENCE, ClusterError, die_with_parent, free_port, kill_tree, tail

# moto takes any key pair; the tests' processes get these (conftest.py), as a real job gets its own
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "prospects-test", "AWS_SECRET_ACCESS_KEY": "prospects-test-secret",
               "AWS_REGION": "us-east-1"}


class S3Server:
    """moto's S3 server on 127.0.0.1.

    Attributes:
        endpoint: ``http://127.0.0.1:<port>``.
        log: the server's output.
    """

    def __init__(self, base: Path, start_timeout: float = START_PATIENCE):
        self.base = Path(base)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = self.base / "moto.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> S3Server:
        self.base.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        out.close()
        deadline = time.time() + self.start_timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2)  # noqa: S310 - loopback
                return self
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise ClusterError(f"moto server did not start:\n{tail(self.log)}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=CREDENTIALS["AWS_REGION"],
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3a://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def spark_conf(self) -> dict[str, str]:
        """The S3A settings of a session or a spark-submit for this endpoint (no credentials: those
        come from the environment)."""
        return {
            "spark.hadoop.fs.s3a.endpoint": self.endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": CREDENTIALS["AWS_REGION"],
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
            # moto's server answers "Expect: 100-continue" in a way the AWS SDK reads as a failed upload
            "spark.hadoop.fs.s3a.connection.expect.continue": "false",
            "spark.hadoop.fs.s3a.aws.credentials.provider":
                "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
        }

    def delta_options(self) -> dict[str, str]:
        """``storage_options`` of the Spark-free reader ``deltalake`` for this endpoint."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": CREDENTIALS["AWS_REGION"],
                "AWS_ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


def credentials_env() -> dict[str, str]:
    """The environment a job needs to reach the test server (its credentials)."""
    return {**os.environ, **CREDENTIALS}
