"""Deployment files shipped with the package: the Helm chart under ``helm/ase-serving``."""

from __future__ import annotations

from pathlib import Path

#: The Helm chart's folder (Chart.yaml, values.yaml, templates/) inside the installed package.
CHART_DIR = Path(__file__).resolve().parent / "helm" / "ase-serving"
