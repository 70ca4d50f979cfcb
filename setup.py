"""Installs the `prospects` library that lives under lib/."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


setup(
    name="prospects",
    version="0.1.0",
    description="PySpark + Delta Lake pipeline: 5G switch prospects, churn and credit-card targets",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    python_requires=">=3.10",
    install_requires=_requirements(),
)
