"""Docker images: the framework and loader base images (``asectl images build``), ``asectl loader
build`` and ``asectl loader test --image``.

Every docker command but a build runs with a timeout, and a missing CLI, an engine that does not
answer or an image that is not on this machine is one clear :class:`DockerError` (what, why, what
to do), never a hang or a registry's error. A build shows one line per Dockerfile step
(:mod:`.builds`), not docker's and pip's whole output. The machine's pip configuration (``pip
config list`` and ``PIP_*`` variables) is passed to builds as build args, read at run time, so no
index host is written into the repository.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ase_serving import __version__
from ase_serving.errors import UserError
from ase_serving.loader.testcases import TestCase, load_cases
from ase_serving.loader.testrun import CaseResult, Report, gateway_refusal, run_case
from ase_serving.protocol.items import Result

if TYPE_CHECKING:
    from ase_serving.loader.client import LoaderClient
    from ase_serving.schema.validate import RequestValidator

FRAMEWORK_IMAGE = f"ase-serving:{__version__}"
LOADER_BASE_IMAGE = f"ase-serving-loader:{__version__}"
#: The base of the framework image (docker/Dockerfile's ``BASE``).
PYTHON_IMAGE = "python:3.11-slim-bookworm"
#: Where progress goes: one line each (to stderr unless a caller says otherwise).
Say = Callable[[str], None]
#: The loader image's ports: gRPC (interop, `loader test --image`) and data (the lean wire the
#: gateways call; what a loader in compose or Kubernetes registers).
LOADER_PORT = 50051
LOADER_DATA_PORT = 50052
_INFO_TIMEOUT = 20.0
_PIP_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")


class DockerError(UserError):
    """Docker cannot do what was asked; the message says what, why and what to do."""


def docker_cli() -> str:
    exe = shutil.which("docker")
    if exe is None:
        raise DockerError(
            "docker: no docker command on PATH, so no image can be built or run; "
            "install it (apt-get install docker.io) or use `asectl init --mode local`"
        )
    return exe


def check_engine(timeout: float = _INFO_TIMEOUT) -> str:
    """The docker CLI's path, once ``docker info`` shows an engine answering."""
    exe = docker_cli()
    try:
        proc = subprocess.run(
            [exe, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise DockerError(
            f"docker: the engine did not answer `docker info` within {timeout:.0f} s; "
            "check that dockerd is running (or DOCKER_HOST points at a live engine)"
        ) from None
    if proc.returncode != 0 or not proc.stdout.strip():
        why = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise DockerError(
            f"docker: no Docker engine answers ({why}); start it (dockerd, or "
            "`systemctl start docker`; scripts/docker-engine here) or set DOCKER_HOST"
        )
    return exe


@dataclass(frozen=True)
class Builder:
    """How this machine's docker builds an image: ``argv`` before the build's options, ``env`` over
    the environment, and whether it is BuildKit."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    buildkit: bool = False


def _cli_builder(exe: str) -> Builder | None:
    """BuildKit through ``exe``: its buildx plugin, or, for a CLI before 23 (Debian's docker.io),
    the BuildKit client built into it (``DOCKER_BUILDKIT=1``); None when it has neither."""
    try:
        buildx = subprocess.run([exe, "buildx", "version"], capture_output=True, text=True, timeout=20)
        if buildx.returncode == 0:
            return Builder((exe, "buildx", "build", "--load"), buildkit=True)
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    # "Docker version 20.10.24+dfsg1, build 297e128"
    major = version.split("version", 1)[-1].strip().split(".", 1)[0]
    if major.isdigit() and int(major) < 23:
        return Builder((exe, "build"), (("DOCKER_BUILDKIT", "1"),), buildkit=True)
    return None


@functools.cache
def builder() -> Builder:
    """The first docker CLI on PATH that builds with BuildKit, else the first one with docker's
    classic builder. BuildKit writes a layer only for RUN and COPY steps; the classic builder
    commits a container for every step, which costs seconds each on the ``vfs`` storage driver
    (where a layer is a copy of the whole file system) and makes a build minutes longer."""
    first = check_engine()
    seen: set[str] = set()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        exe = shutil.which("docker", path=folder) if folder else None
        if exe is None or os.path.realpath(exe) in seen:
            continue
        seen.add(os.path.realpath(exe))
        found = _cli_builder(exe)
        if found is not None:
            return found
    return Builder((first, "build"))


def say_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def image_exists(exe: str, image: str) -> bool:
    """Whether ``image`` is on this machine (``docker image inspect``; no registry asked)."""
    try:
        proc = subprocess.run(
            [exe, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise DockerError(f"docker: `docker image inspect {image}` did not answer within 60 s") from None
    return proc.returncode == 0 and bool(proc.stdout.strip())


def pip_build_args() -> list[str]:
    """``--build-arg`` options for the pip index of this machine (env first, then `pip config`)."""
    found: dict[str, str] = {}
    try:
        out = subprocess.run(["pip", "config", "list"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1].strip()
        env = "PIP_" + name.upper().replace("-", "_")
        if env in _PIP_ARGS:
            found[env] = value.strip().strip("'\"")
    for env in _PIP_ARGS:
        if os.environ.get(env):
            found[env] = os.environ[env]
    args: list[str] = []
    for env, value in found.items():
        # Local paths (file:// indexes, find-links) do not exist inside a build.
        urls = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if urls or env == "PIP_TRUSTED_HOST":
            args += ["--build-arg", f"{env}={urls or value}"]
    return args


def docker_build(
    context: Path,
    dockerfile: Path,
    tag: str,
    extra: list[str] | None = None,
    say: Say = say_to_stderr,
    verbose: bool = False,
    base: str | None = None,
) -> None:
    """``docker build --network host`` of a Dockerfile FROM ``base``: one progress line per step
    through ``say`` (docker's whole output with ``verbose``); a failure is one :class:`DockerError`
    after the last lines."""
    from ase_serving.cluster.builds import run_build

    how = builder()
    cmd = [*how.argv, "--network", "host", "-f", str(dockerfile), "-t", tag, *pip_build_args()]
    cmd += [*(extra or []), str(context)]
    run_build(cmd, tag, say, verbose, base, dict(how.env))


def build_framework(
    repo: Path,
    tag: str = FRAMEWORK_IMAGE,
    python: str = PYTHON_IMAGE,
    say: Say = say_to_stderr,
    verbose: bool = False,
) -> None:
    extra = [] if python == PYTHON_IMAGE else ["--build-arg", f"BASE={python}"]
    with tempfile.TemporaryDirectory(prefix="ase-build-") as tmp:
        context = _context(repo, "Dockerfile", Path(tmp))
        # What docker/Dockerfile copies, and nothing else.
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(repo / name, context / name)
        shutil.copytree(repo / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        docker_build(context, context / "Dockerfile", tag, extra, say, verbose, python)


def _context(repo: Path, dockerfile: str, into: Path) -> Path:
    """A build context of its own for ``repo/docker/dockerfile``: docker reads every file of a
    context before it builds, and fails when one goes away meanwhile (a test run's coverage files
    come and go in a working tree), so a base image is never built from the tree itself."""
    shutil.copy2(repo / "docker" / dockerfile, into / "Dockerfile")
    return into


def build_loader_base(
    repo: Path,
    tag: str = LOADER_BASE_IMAGE,
    framework: str = FRAMEWORK_IMAGE,
    say: Say = say_to_stderr,
    verbose: bool = False,
) -> None:
    extra = ["--build-arg", f"FRAMEWORK={framework}"]
    with tempfile.TemporaryDirectory(prefix="ase-build-") as tmp:
        context = _context(repo, "loader.Dockerfile", Path(tmp))  # it copies nothing
        docker_build(context, context / "Dockerfile", tag, extra, say, verbose, framework)


def project_tag(folder: Path) -> str:
    """``NAME:VERSION`` from ase.toml's [service] (else the folder name and 1.0.0)."""
    from ase_serving.loader.project import load_project

    settings = load_project(folder)
    return f"ase-{settings.service.lower()}:{settings.version}"


def loader_dockerfile(folder: Path, base: str = LOADER_BASE_IMAGE) -> str:
    """The Dockerfile ``asectl loader build`` uses for a wrapper project."""
    lines = [f"FROM {base}", "USER root"]
    if _requires(folder / "requirements.txt"):
        lines += [
            "COPY requirements.txt /tmp/requirements.txt",
            "RUN pip install --quiet --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt"
            " && rm /tmp/requirements.txt",
        ]
    lines += ["COPY --chown=10001:10001 . /app", "USER 10001", "WORKDIR /app"]
    return "\n".join(lines) + "\n"


def _requires(path: Path) -> bool:
    """Whether a requirements.txt names anything (one of comments only needs no pip step)."""
    if not path.is_file():
        return False
    return any(line.split("#", 1)[0].strip() for line in path.read_text().splitlines())


def check_base(exe: str, base: str) -> None:
    """Refuse to build on a loader base image this machine does not have: docker would ask a
    registry for it, which has none of ours (its error says nothing of how to make one)."""
    if image_exists(exe, base):
        return
    if base.split(":", 1)[0] == LOADER_BASE_IMAGE.split(":", 1)[0]:
        raise DockerError(
            f"docker: the loader base image {base} is not on this machine: build it with "
            "`asectl images build` (a few minutes, once), or name another with --base IMAGE"
        )
    # Any other base may be in a registry: docker pulls it (and says so when it cannot).


def build_loader(
    folder: Path,
    tag: str | None = None,
    base: str = LOADER_BASE_IMAGE,
    say: Say = say_to_stderr,
    verbose: bool = False,
) -> str:
    if not (folder / "wrapper.py").is_file():
        raise DockerError(f"{folder}: no wrapper.py, so it is not a wrapper project")
    tag = tag or project_tag(folder)
    check_base(check_engine(), base)
    dockerfile = folder / ".ase-build.Dockerfile"
    dockerfile.write_text(loader_dockerfile(folder, base))
    try:
        docker_build(folder, dockerfile, tag, None, say, verbose, base)
    finally:
        dockerfile.unlink(missing_ok=True)
    return tag


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _running(exe: str, container: str) -> bool:
    proc = subprocess.run(
        [exe, "inspect", "--format", "{{.State.Running}}", container],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.strip() == "true"


def _wait_loader(exe: str, container: str, port: int, timeout: float, say: Say) -> str | None:
    """Wait until the loader in ``container`` answers on ``port``; None when it does, else why not
    (the container stopped, or ``timeout`` passed). A line through ``say`` every few seconds."""
    from ase_serving.loader.client import LoaderClient

    start = time.monotonic()
    next_line = start + 5.0
    while (waited := time.monotonic() - start) < timeout:
        try:
            with LoaderClient(f"127.0.0.1:{port}", timeout=2.0) as client:
                client.info(timeout=2.0)
            say(f"the loader answers after {time.monotonic() - start:.0f} s")
            return None
        except Exception:
            pass
        if not _running(exe, container):
            return f"its container stopped after {waited:.0f} s"
        if time.monotonic() >= next_line:
            say(
                f"  still waiting for the loader (its workers run wrapperInit): {waited:.0f} s of "
                f"{timeout:.0f}"
            )
            next_line += 5.0
        time.sleep(0.5)
    return f"it did not answer within {timeout:.0f} s"


def _remote_result(client: LoaderClient, case: TestCase) -> Result:
    """A case's result from a running loader: a session's frames folded into its last result."""
    from ase_serving.loader.testcases import call_case

    results = call_case(client, case, 30.0)
    result = results[-1]
    for extra in results[:-1]:
        result.items[:0] = extra.items
    return result


def _checked_result(validator: RequestValidator | None, client: LoaderClient, case: TestCase) -> Result:
    """The gateway's answer to a case it refuses, else the running loader's result."""
    return gateway_refusal(validator, case) or _remote_result(client, case)


def test_image(folder: Path, image: str, timeout: float = 120.0, say: Say = say_to_stderr) -> Report:
    """Run ``image`` (its gRPC port on 127.0.0.1), wait for the loader's health (saying so through
    ``say`` while it waits), run ``folder``'s cases against it over gRPC, and remove the container
    whatever happens.

    Standalone, there is no config centre and so no cluster secret: the data port stays on the
    container's loopback (``--data-host 127.0.0.1``), as a data port beyond it requires one."""
    from ase_serving.loader.client import LoaderClient
    from ase_serving.schema.validate import RequestValidator

    exe = check_engine()
    if not image_exists(exe, image):
        raise DockerError(
            f"docker: no image {image} on this machine: `asectl loader build {folder}` builds the "
            "project's (its tag is printed), or `docker pull` it"
        )
    port = free_port()
    # No --rm: the log of a container that stops at once is still there to show.
    run = [exe, "run", "-d", "-p", f"127.0.0.1:{port}:{LOADER_PORT}", image]
    run += ["--standalone", "--data-host", "127.0.0.1"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise DockerError(f"docker run {image} failed: {proc.stderr.strip()}")
    container = proc.stdout.strip()
    say(f"started {image} (container {container[:12]}); waiting for its loader, up to {timeout:.0f} s")
    report = Report(project=folder)
    try:
        why = _wait_loader(exe, container, port, timeout, say)
        if why is not None:
            logs = subprocess.run([exe, "logs", container], capture_output=True, text=True, timeout=20)
            tail = (logs.stdout + logs.stderr).strip()[-2000:]
            raise DockerError(f"the loader in {image} is not serving: {why}; its log:\n{tail}")
        cases = load_cases(folder / "tests")
        report.no_cases = not cases
        # Each case passes the gateway's schema check first, as in `loader test` without --image:
        # a case the gateway refuses (10163 ...) gets that answer, not the engine's.
        from ase_serving.loader.project import load_project
        from ase_serving.loader.project_schemas import read_project_api

        api = read_project_api(load_project(folder))
        report.problems.extend(api.problems)
        report.warnings.extend(api.warnings)
        validator = RequestValidator(api.service.schemainput) if api.service is not None else None
        with LoaderClient(f"127.0.0.1:{port}", timeout=30.0) as client:
            for case in cases:
                start = time.perf_counter()
                try:
                    out = run_case(case, functools.partial(_checked_result, validator, client, case))
                except Exception as exc:
                    out = CaseResult(name=case.name, ok=False, file=str(case.file))
                    out.reason = f"call failed: {exc}"
                    out.ms = (time.perf_counter() - start) * 1000
                report.cases.append(out)
    finally:
        subprocess.run([exe, "rm", "-f", container], capture_output=True, timeout=60, check=False)
    return report
