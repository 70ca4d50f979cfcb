# The two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JARS := .cache/jars/.fetched
SIZES ?= 200000,1000000
# test processes (pytest-xdist); each test module stays in one process, which keeps its fixtures.
# The cluster suite has three modules (standalone cluster, stores, YARN): a process each.
TEST_WORKERS ?= 2
CLUSTER_WORKERS ?= 3
ARGS ?=

.PHONY: setup demo test test-cluster lint bench churn credit clean help
help:
	@echo "make demo   - set up if needed, generate a user base, run every stage on local Spark + Delta"
	@echo "make test   - set up if needed, run the test suite (without the cluster and storage tests)"
	@echo "make test-cluster - the tests on real clusters and stores: Spark standalone, HDFS, YARN, S3"
	@echo "make setup  - virtual environment, pinned packages, Delta jars, the JVM class archive (once; offline afterwards)"
	@echo "make bench SIZES=200000,1000000 - benchmark against the pandas/scikit-learn reference"
	@echo "make churn  - churn use case on the IBM Telco sample: ingest, profile, train, insights, A/B test"
	@echo "make credit - credit-card use case: labels, demand and risk models, per-region target list"

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	# notebooks run on this environment's Python (the wheel's kernel spec would run `python` from PATH)
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

# JVM packages, fetched once (about 1 GB, most of it the AWS SDK bundle), offline afterwards:
# Delta and S3A for the product, the Hadoop minicluster for the tests' HDFS and YARN
$(JARS): $(STAMP) conf/base.yml tests/hadoop.py
	$(PY) -m prospects.core.jars fetch
	$(PY) -m tests.hadoop fetch
	touch $(JARS)

# the JVM's class-data archive (prospects.core.class_archive): built once, at once when it exists
setup: $(STAMP) $(JARS)
	$(PY) -m prospects.core.class_archive build

demo: setup
	$(PY) -m jobs.pipeline --generate $(ARGS)

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not cluster" --durations=15 tests $(ARGS)

# Real clusters and stores started by the tests on 127.0.0.1 (tests/cluster.py, tests/hadoop.py, tests/s3.py)
test-cluster: setup
	$(PY) -m pytest -q -n $(CLUSTER_WORKERS) --dist loadfile -m cluster --durations=15 tests $(ARGS)

# ruff, the import rules of docs/architecture.md, no library function over 60 lines, no block of
# six lines standing in two places
lint: setup
	$(VENV)/bin/ruff check lib jobs tests bench .ci
	$(PY) .ci/layers.py
	$(PY) .ci/function_lengths.py --max 60 --top 5 lib jobs
	$(PY) .ci/duplicate_blocks.py --lines 6 lib jobs

bench: setup
	$(PY) -m bench --sizes $(SIZES) $(ARGS)

# Churn on the real IBM Telco sample (../shared/data/telco_churn); outcomes of the A/B test are
# simulated (abtest.simulated_retention) until real ones are given with abtest.outcomes_path.
CHURN_SIM := --set "abtest.simulated_retention={data_bonus: 0.62, contract_discount: 0.68, control: 0.55}"
churn: setup
	$(PY) -m jobs.pipeline --use-case telco_churn --stages ingest,profile,train,report $(ARGS)
	$(PY) -m jobs.churn_insights --use-case telco_churn $(ARGS)
	$(PY) -m jobs.ab_assign --use-case telco_churn $(ARGS)
	$(PY) -m jobs.ab_analyze --use-case telco_churn $(CHURN_SIM) $(ARGS)

# Credit-card prospects on the generated user base: credit_labels --generate writes the user base
# (conf/fiveg.yml's files) under paths.raw first when it is not there for these generator settings.
# ARGS reach every step; the risk run's own settings come after them (they must win).
CREDIT_RISK := --set dataset.label_file=credit_risk_label.csv --set generator.oracle_file=credit_risk_oracle \
	--set paths.lakehouse=lakehouse/credit_risk
credit: setup
	$(PY) -m jobs.credit_labels --use-case credit --generate $(ARGS)
	$(PY) -m jobs.pipeline --use-case credit --stages ingest,train,score $(ARGS)
	$(PY) -m jobs.pipeline --use-case credit --stages ingest,train,score $(ARGS) $(CREDIT_RISK)
	$(PY) -m jobs.credit_targets --use-case credit $(ARGS)

clean:
	rm -rf lakehouse data/raw dist build .pytest_cache
