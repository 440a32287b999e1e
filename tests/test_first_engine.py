"""One's own engine behind the gateway in three commands, run as a user runs them (issue 18).

The README's "Your own engine in three commands" lists them; `asectl loader new hello` prints the
next two; they are run as printed (`asectl init`
with free ports added: `--config-port 0 --gateway-port 0`, so that it never meets another cluster),
the loader in the background as if in a second terminal. The `try` line the loader prints is run
as printed, in a shell, and must answer through the gateway; its docs page must be served. A fresh
`$ASE_HOME`, real processes, loopback ports. The seconds from the first command to the first
answer are printed (`pytest -s`) and recorded as the test's property ``seconds_to_first_answer``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import read_ready_line, stop_group, wait_for

pytestmark = pytest.mark.timeout(240)

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass
class User:
    """A shell of a new user: a fresh ``$ASE_HOME``, a work folder, ``asectl`` on ``PATH``."""

    work: Path
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def sh(self, line: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``line`` in a shell, as typed (no terminal)."""
        return subprocess.run(
            ["bash", "-c", line],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def background(self, line: str) -> tuple[subprocess.Popen[str], Path]:
        """Start ``line`` (a plain command) as in a second terminal: in its own process group, its
        stdout piped, its stderr in the returned file."""
        err = self.work.parent / f"background-{len(self.started)}.log"
        with err.open("w") as err_fh:
            proc = subprocess.Popen(
                shlex.split(line),
                cwd=self.work,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err_fh,
                text=True,
                start_new_session=True,
            )
        self.started.append(proc)
        return proc, err


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = Path(sys.executable).parent / "asectl"
    shim = bin_dir / "asectl"
    if script.exists():  # the console script the install made
        shim.symlink_to(script)
    else:
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ase_serving.cli.main "$@"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASE_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["ASE_HOME"] = str(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    u = User(work, env)
    yield u
    for proc in u.started:
        stop_group(proc)
    u.sh("asectl down", timeout=60)


@dataclass
class Served:
    """What `asectl loader run` printed once serving."""

    proc: subprocess.Popen[str]
    stderr: Path
    lines: dict[str, str]
    #: Seconds from the first command to the end of each step ("new", "init", "ready").
    steps: dict[str, float] = field(default_factory=dict)


def serve(user: User, run_line: str) -> Served:
    """Start the printed `asectl loader run` line; its ready line and the api/docs/try lines."""
    proc, err = user.background(run_line)
    try:
        ready = read_ready_line(proc, lambda text: " serving on " in text, 60)
    except RuntimeError as exc:
        raise AssertionError(f"the loader did not start ({exc}): {err.read_text()}") from None
    lines = {"ready": ready.strip()}
    assert proc.stdout is not None
    while "try" not in lines:  # written with the ready line, in one write
        line = proc.stdout.readline()
        assert line, f"the loader printed no `try` line: {lines}; {err.read_text()}"
        key, _, rest = line.rstrip("\n").partition(" ")
        lines[key] = rest.strip()
    return Served(proc, err, lines)


def readme_commands() -> list[str]:
    """The commands of the README's "Your own engine in three commands" (its first bash block)."""
    section = README.read_text().split("### Your own engine in three commands", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def three_commands(user: User, mode: str = "once") -> tuple[Served, float, Callable[[], float]]:
    """`asectl loader new hello`, then the two commands it prints (the loader in the background).
    Returns what the loader printed, the start time, and a clock."""
    start = time.monotonic()
    new = user.sh("asectl loader new hello" + ("" if mode == "once" else f" --mode {mode}"))
    assert new.returncode == 0, new.stderr
    printed = [
        line.split("#", 1)[0].strip() for line in new.stdout.splitlines() if line.startswith("  asectl ")
    ]
    assert printed == ["asectl init", "asectl loader run hello --push-schema"], new.stdout
    # ... which are the README's three commands.
    assert readme_commands() == ["asectl loader new hello", *printed]
    steps = {"new": time.monotonic() - start}
    init = user.sh(printed[0] + " --config-port 0 --gateway-port 0")
    assert init.returncode == 0, init.stdout + init.stderr
    steps["init"] = time.monotonic() - start
    served = serve(user, printed[1])
    steps["ready"] = time.monotonic() - start
    served.steps = steps
    return served, start, lambda: time.monotonic() - start


def first_answer(user: User, line: str, want: str) -> subprocess.CompletedProcess[str]:
    """Run ``line`` until it answers ``want`` (the gateway learns the pushed schema and the loader's
    registration within about a second); the answer."""

    def answered() -> subprocess.CompletedProcess[str] | None:
        done = user.sh(line, timeout=60)
        return done if done.returncode == 0 and want in done.stdout else None

    got: subprocess.CompletedProcess[str] = wait_for(answered, 30, f"{line!r} to answer", 0.1)
    return got


@pytest.mark.parametrize("mode", ["once", "session"])
def test_three_commands_serve_ones_own_engine_with_a_docs_page(
    user: User, mode: str, record_property: Callable[[str, object], None]
) -> None:
    served, _start, clock = three_commands(user, mode)
    lines = served.lines
    gateway = lines["docs"].split("/docs?", 1)[0]
    assert lines["api"] == f"{gateway}/v1/private/hello  ({'POST' if mode == 'once' else 'WebSocket'})"
    assert lines["docs"] == f"{gateway}/docs?service=hello"
    try_line = lines["try"]
    session = "" if mode == "once" else "--session "
    assert try_line.startswith(
        f"ASE_HOME={user.env['ASE_HOME']} asectl call hello {session}--data 'text=hello ASE'"
    )

    answer = first_answer(user, try_line, "hello ASE")
    seconds = clock()
    # The scaffold's echo, through the gateway (a session's last result is marked final).
    assert answer.stdout.strip() == ("hello ASE" if mode == "once" else "[final] hello ASE")
    record_property("seconds_to_first_answer", round(seconds, 2))
    done = ", ".join(f"{step} {at:.1f} s" for step, at in served.steps.items())
    print(f"\nthree commands ({mode}): {done}, first answer through the gateway {seconds:.1f} s")

    docs = httpx.get(lines["docs"], timeout=10)
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "ASE serving: hello API" in docs.text
    spec = httpx.get(f"{gateway}/openapi/hello.json", timeout=10)
    assert spec.status_code == 200
    operation = spec.json()["paths"]["/v1/private/hello"]["post" if mode == "once" else "get"]
    assert "upper" in orjson.dumps(operation).decode()  # ai_api.yml's parameter is documented


def test_the_dev_loop_edit_test_and_run_again_with_push_schema(user: User) -> None:
    served, _start, _clock = three_commands(user)
    first_answer(user, served.lines["try"], "hello ASE")

    # Edit the API: a bounded parameter, and a case that breaks it.
    yml = user.work / "hello" / "ai_api.yml"
    repeat = "        repeat:\n          type: integer\n          minimum: 1\n          maximum: 10\n"
    yml.write_text(yml.read_text().replace("        upper:\n", repeat + "        upper:\n", 1))
    case = user.work / "hello" / "tests" / "repeat.yml"
    case.write_text(
        "name: repeat\nrequest:\n  header: {app_id: test}\n  parameter: {hello: {repeat: 11}}\n"
        "  payload: {text: {encoding: utf8, text: {utf8: hi}}}\nexpect: {code: 0}\n"
    )
    tested = user.sh("asectl loader test hello --json")
    assert tested.returncode == 1
    (result,) = [c for c in orjson.loads(tested.stdout)["cases"] if c["name"] == "repeat"]
    assert result["code"] == 10163
    local = result["message"]
    assert local == "parameter.hello.repeat: 11 is greater than the maximum of 10"

    # Ctrl-C the loader, run the same line again: --push-schema sends the edited API.
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(30) == 0
    again = serve(user, "asectl loader run hello --push-schema")
    wait_for(lambda: "replaced the schema" in again.stderr.read_text(), 20, "the edited schema pushed")

    call = served.lines["try"].split("#", 1)[0] + " --param repeat=11"

    def refused() -> str | None:
        done = user.sh(call)
        # `asectl call`: "error: CODE: MESSAGE (sid ...)"; until the gateway has the new revision,
        # the old schema refuses `repeat` as an unknown parameter instead.
        text = done.stderr.strip()
        return text if done.returncode == 1 and "greater than" in text else None

    refusal = wait_for(refused, 30, "the gateway to serve the edited schema", 0.2)
    assert refusal.startswith(f"error: 10163: {local} (sid "), refusal
    # ... and a value in range is served.
    ok = user.sh(served.lines["try"].split("#", 1)[0] + " --param repeat=3")
    assert ok.returncode == 0 and ok.stdout.strip() == "hello ASE", ok.stderr
