"""The README's "Python client" example runs as written (only the gateway's URL replaced)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from tests.gateway.support import GatewayProcess

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    section = README.read_text().split("### Python client", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block in the README's Python client section"
    return match.group(1)


def test_the_readme_example_runs(gw: GatewayProcess, consumer: dict[str, str], tmp_path: Path) -> None:
    code = example()
    assert '"http://127.0.0.1:2392"' in code
    code = code.replace('"http://127.0.0.1:2392"', repr(gw.url))
    # The home `asectl init` leaves: credentials.json with a consumer of the gateway's cluster.
    (tmp_path / "credentials.json").write_bytes(orjson.dumps(consumer))
    env = {**os.environ, "ASE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    assert re.fullmatch(r"hello ASE ase\S+", lines[0]), lines[0]
    assert lines[1] == "one two three"
    assert lines[2].startswith("10163 "), lines[2]
