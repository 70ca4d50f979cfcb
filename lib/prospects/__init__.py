"""prospects: PySpark + Delta Lake pipeline that ranks mobile users for a target (5G switch,
number-portability churn, credit-card demand) and hands marketing explained prospect lists."""

__version__ = "0.1.0"
