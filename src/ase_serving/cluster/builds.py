"""Docker builds with progress: one line per Dockerfile step, a line while a long step runs, and on
failure the last lines of docker's output and one error that names the step.

A build's whole output (docker's and pip's: hundreds of lines) says little to someone waiting for
it; the step it is at and for how long says enough, and ``verbose`` streams everything as before.
Both of docker's builders are read: the classic one (``Step 3/9 : RUN ...``) and BuildKit's plain
progress (``#7 [builder 3/6] RUN ...``). Also :func:`build_base_images`, what ``asectl images
build`` runs, and :func:`source_tree`, the folder it builds from.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ase_serving
from ase_serving.cluster.images import (
    FRAMEWORK_IMAGE,
    LOADER_BASE_IMAGE,
    PYTHON_IMAGE,
    DockerError,
    Say,
    build_framework,
    build_loader_base,
    say_to_stderr,
)

_CLASSIC = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILDKIT = re.compile(r"^#\d+ \[(?:[\w.-]+ )?(\d+)/(\d+)\] (.*)$")
#: Seconds without a new step after which a line says the build is still at it.
_STILL = 15.0
#: Lines of docker's output shown when a build fails.
_TAIL = 25
#: What docker says when an image it was asked for is neither here nor in a registry it reaches.
_PULL_FAILED = re.compile(
    r"pull access denied|manifest unknown|not found: manifest|no such host|dial tcp|registry-1\.docker\.io"
    r"|failed to resolve source metadata|repository does not exist",
    re.I,
)


#: docker's notice that its classic builder is deprecated: not what a failed build's tail is for.
_NOISE = re.compile(r"legacy builder is deprecated|Install the buildx component|docs\.docker\.com/go/buildx")


@dataclass
class _Step:
    number: int = 0
    total: int = 0
    text: str = ""
    since: float = 0.0


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def run_build(
    cmd: list[str],
    tag: str,
    say: Say = say_to_stderr,
    verbose: bool = False,
    base: str | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run the ``docker build`` command ``cmd`` of ``tag`` (FROM ``base``; ``env`` over this
    environment), its progress through ``say``."""
    start = time.monotonic()
    env = {**os.environ, **(env or {}), "BUILDKIT_PROGRESS": "plain"}  # BuildKit's line-per-event output
    if verbose:
        proc = subprocess.run(cmd, check=False, env=env)
        if proc.returncode != 0:
            raise DockerError(f"docker build of {tag} failed (exit {proc.returncode}); its output is above")
        say(f"built {tag} in {time.monotonic() - start:.0f} s")
        return
    proc_ = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
    )
    step = _Step(since=start)
    lock = threading.Lock()
    done = threading.Event()

    def still() -> None:  # a line while one step takes long (pip installing, say)
        while not done.wait(_STILL):
            with lock:
                if step.number and time.monotonic() - step.since >= _STILL:
                    spent = time.monotonic() - start
                    say(f"  {tag}: still at step {step.number}/{step.total} ({spent:.0f} s)")

    ticker = threading.Thread(target=still, daemon=True)
    ticker.start()
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
    assert proc_.stdout is not None
    try:
        for raw in proc_.stdout:
            line = raw.rstrip()
            if not line:
                continue
            if not _NOISE.search(line):
                tail.append(line)
            match = _CLASSIC.match(line) or _BUILDKIT.match(line)
            if match:
                number, total = int(match.group(1)), int(match.group(2))
                with lock:
                    if (number, total) != (step.number, step.total):
                        step.number, step.total, step.text = number, total, match.group(3)
                        step.since = time.monotonic()
                        say(f"  {tag}: step {number}/{total} {_short(step.text)}")
        code = proc_.wait()
    finally:
        done.set()
        if proc_.poll() is None:  # interrupted: no docker build left behind
            proc_.kill()
            proc_.wait()
    if code != 0:
        for line in tail:
            say(f"    {line}")
        raise DockerError(_failure(tag, step, list(tail), code, base))
    say(f"built {tag} in {time.monotonic() - start:.0f} s")


def _failure(tag: str, step: _Step, tail: list[str], code: int, base: str | None) -> str:
    at = f" at step {step.number}/{step.total} ({_short(step.text, 60)})" if step.number else ""
    # The classic builder fails at its FROM step; BuildKit while resolving the FROMs, before any step.
    at_from = not step.number or step.text.upper().startswith("FROM ")
    if at_from and any(_PULL_FAILED.search(line) for line in tail) and (base or step.number):
        image = base or step.text.split()[1]
        hint = (
            "scripts/docker-base makes a local stand-in, or pass --python-base IMAGE"
            if image == PYTHON_IMAGE
            else "build or pull it first"
        )
        return (
            f"docker build of {tag} failed: its base image {image} is not on this machine and "
            f"cannot be pulled from a registry; {hint}"
        )
    return f"docker build of {tag} failed{at} (exit {code}); the last lines of its output are above"


def source_tree(given: Path | None = None) -> Path:
    """The ase-serving source folder the base images are built from: ``given``, else the one this
    package runs from (an editable install or ``PYTHONPATH=src``), else the current folder."""
    candidates = (
        [given] if given is not None else [Path(ase_serving.__file__).resolve().parents[2], Path.cwd()]
    )
    for folder in candidates:
        if (folder / "docker" / "Dockerfile").is_file() and (folder / "src" / "ase_serving").is_dir():
            return folder
    where = f"{given}" if given is not None else "the folder this package runs from, nor the current folder,"
    raise DockerError(
        f"{where} is not an ase-serving source tree (no docker/Dockerfile and src/ase_serving): run "
        "`asectl images build` in a clone of the repository, or name one with --source DIR"
    )


def build_base_images(
    source: Path,
    python: str = PYTHON_IMAGE,
    framework: str = FRAMEWORK_IMAGE,
    loader: str = LOADER_BASE_IMAGE,
    say: Say = say_to_stderr,
    verbose: bool = False,
) -> list[str]:
    """The framework image (on ``python``), then the loader base image on it; their tags."""
    say(f"building {framework} (the framework image: docker/Dockerfile on {python})")
    build_framework(source, framework, python, say, verbose)
    say(f"building {loader} (the loader base image: docker/loader.Dockerfile on {framework})")
    build_loader_base(source, loader, framework, say, verbose)
    return [framework, loader]
