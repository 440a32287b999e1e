"""``asectl init --mode k8s``: install the packaged Helm chart with the ``helm`` on PATH.

The chart ships inside the package (:data:`ase_serving.deploy.CHART_DIR`). :func:`helm_argv` builds
``helm upgrade --install`` (or ``helm template`` for a dry run); :func:`run_helm` runs it with the
output shown as it comes, and a missing ``helm`` or an unreachable cluster is one clear
:class:`K8sError` that says what to do.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ase_serving.deploy import CHART_DIR
from ase_serving.errors import UserError

DEFAULT_RELEASE = "ase"
DEFAULT_NAMESPACE = "ase"

_INSTALL_HOWTO = (
    "helm is not installed (not on PATH, not next to this Python): install Helm 3.8+ "
    "(https://helm.sh/docs/intro/install/), or from a checkout of this repository run scripts/install-helm"
)

#: Phrases in helm's stderr that mean "no Kubernetes cluster to talk to".
_UNREACHABLE = (
    "kubernetes cluster unreachable",
    "connection refused",
    "no configuration has been provided",
    "dial tcp",
    "no such host",
    "i/o timeout",
)


class K8sError(UserError):
    """What went wrong, as one message for the user, and the exit code to use."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class K8sOptions:
    release: str = DEFAULT_RELEASE
    namespace: str = DEFAULT_NAMESPACE
    values: list[Path] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    dry_run: bool = False
    chart: Path = CHART_DIR
    timeout: str | None = None
    wait: bool = False


def find_helm() -> str | None:
    """``$ASE_HELM`` when set ("" = none), else ``helm`` on PATH, else the one scripts/install-helm puts
    next to this interpreter (.venv/bin)."""
    pinned = os.environ.get("ASE_HELM")
    if pinned is not None:
        return shutil.which(pinned) if pinned else None
    found = shutil.which("helm")
    if found:
        return found
    local = Path(sys.executable).parent / "helm"
    return str(local) if local.is_file() and shutil.which(str(local)) else None


def check_options(opts: K8sOptions) -> None:
    if not (opts.chart / "Chart.yaml").is_file():
        raise K8sError(
            f"the Helm chart is missing from this installation ({opts.chart}): reinstall ase-serving"
        )
    for path in opts.values:
        if not path.is_file():
            raise K8sError(f"--values {path}: no such file", 2)


def helm_argv(opts: K8sOptions, helm: str = "helm") -> list[str]:
    """The helm command line for ``opts``: ``template`` for a dry run, else ``upgrade --install``."""
    if opts.dry_run:
        argv = [helm, "template", opts.release, str(opts.chart), "--namespace", opts.namespace]
    else:
        argv = [helm, "upgrade", "--install", opts.release, str(opts.chart)]
        argv += ["--namespace", opts.namespace, "--create-namespace"]
        if opts.wait:
            argv.append("--wait")
        if opts.timeout:
            argv += ["--timeout", opts.timeout]
    for path in opts.values:
        argv += ["--values", str(path)]
    for item in opts.sets:
        argv += ["--set", item]
    return argv


def command_line(argv: list[str]) -> str:
    return shlex.join(argv)


def run_helm(opts: K8sOptions) -> int:
    """Run helm for ``opts`` with stdout passed through; raise :class:`K8sError` on any failure."""
    check_options(opts)
    helm = find_helm()
    if helm is None:
        raise K8sError(f"{_INSTALL_HOWTO}; then run:\n  {command_line(helm_argv(opts))}")
    argv = helm_argv(opts, helm)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    except OSError as exc:
        raise K8sError(f"cannot run {helm}: {exc.strerror or exc}") from exc
    if proc.returncode == 0:
        if proc.stderr:
            sys.stderr.write(proc.stderr)
        return 0
    err = proc.stderr.strip()
    if any(p in err.lower() for p in _UNREACHABLE):
        raise K8sError(
            "no Kubernetes cluster reachable (check kubectl's current context / KUBECONFIG); helm said:\n"
            f"  {err}\nthe command was:\n  {command_line(argv)}"
        )
    raise K8sError(
        f"helm failed (exit {proc.returncode}):\n  {err}\nthe command was:\n  {command_line(argv)}"
    )
