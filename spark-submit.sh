#!/usr/bin/env bash
# Submit any job of this product with spark-submit: local (default), standalone, YARN or Kubernetes.
#
#   ./spark-submit.sh [--master URL] [--deploy-mode client|cluster] [--conf k=v ...] [--dry-run] JOB [JOB ARGS]
#   ./spark-submit.sh ingest --run-date 2026-11-01
#   ./spark-submit.sh --master spark://10.0.0.5:7077 score --env cluster --set paths.lakehouse=s3a://b/lh
#
# It packages lib/prospects and jobs/ into dist/prospects.zip for --py-files, ships conf/*.yml with
# --files, adds the cached Delta jars with --jars and runs the generated launcher
# dist/prospects_run.py JOB (which runs the module jobs.JOB). The master and deploy mode come from
# the command line, else from conf (submit.master, submit.deploy_mode). Exit code: the job's
# (0 ok, 1 failed, 2 configuration error), with a one-line reason on stderr.
# Python: $PYTHON, else the project's .venv (make setup), else python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi
export PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m prospects.submit --root "$ROOT" "$@"
