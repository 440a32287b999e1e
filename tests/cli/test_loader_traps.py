"""The traps between `asectl loader new` and one's own engine behind the gateway (issue 18), each a
clear line now: a project without an API schema, a broken API definition, a schema edited but not
pushed, a wrapper's exception without its traceback, wrapperOnceExec returning None, and ase.toml
naming the service otherwise than ai_api.yml.

`asectl` runs as a user runs it (a real process); loaders register with a real embedded config
centre, whose items are read back with the store's own client.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from ase_serving.cluster_settings import ClusterSettings
from ase_serving.protocol.items import DataItem, Request
from ase_serving.store import ConfigKey, NotFound
from tests.cli.cluster_support import project_home
from tests.conftest import StartLoader
from tests.store.embedded_server import EmbeddedServer
from tests.support import asectl, one_line_error, wait_for

pytestmark = pytest.mark.timeout(90)

#: The seed's Api class, min > max included (SEED_EN.md).
SEED_API_CLASS = """

from ase_serving import api as base


class Api(base.BaseASEApi):
    def request(self):
        param1 = base.Arg("param1", int, "user param1", max=10, min=11, required=True)
        param2 = base.Arg("param2", str, "user param2", required=True)
"""


def new_project(parent: Path, name: str = "hello", mode: str = "once") -> Path:
    proc = asectl("loader", "new", name, "--mode", mode, "--dir", parent)
    assert proc.returncode == 0, proc.stderr
    return parent / name


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def cluster_home(tmp_path: Path, centre: EmbeddedServer, gateway: str | None = None) -> Path:
    """A home set up for ``centre`` in a project of this test's own; ``gateway``: the URL saved as
    the cluster's gateway (what `asectl init` saves; `loader run` prints its API lines with it)."""
    home = project_home(tmp_path, centre.url, centre.password)
    if gateway is not None:
        settings = ClusterSettings.load(home)
        assert settings is not None
        settings.components["gateway"] = gateway
        settings.save(home)
    return home


def config_item(centre: EmbeddedServer, home: Path, service: str, name: str) -> Any:
    settings = ClusterSettings.load(home)
    assert settings is not None
    key = ConfigKey(settings.project, settings.group, service, "1.0.0", name)

    async def get() -> Any:
        backend = centre.backend()
        try:
            return await backend.config.get(key)
        except NotFound:
            return None
        finally:
            await backend.close()

    return asyncio.run(get())


def lines_after_ready(loader: Any, last: str) -> list[str]:
    """The lines `loader run` printed after its ready line, up to the one starting with ``last``
    (written with the ready line, in one write: already in the pipe's buffer)."""
    out = []
    while True:
        line = loader.proc.stdout.readline()
        assert line, f"stdout ended after {out}"
        out.append(line.rstrip("\n"))
        if line.startswith(last):
            return out


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that holds ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- 1: a project with no API schema -----------------------------------------------------------


def test_without_a_schema_loader_run_says_what_to_add_instead_of_dead_urls(
    tmp_path: Path, centre: EmbeddedServer, loaders: StartLoader
) -> None:
    root = new_project(tmp_path)
    (root / "ai_api.yml").unlink()
    home = cluster_home(tmp_path, centre, gateway="http://127.0.0.1:9")
    loader = loaders(root, env={"ASE_HOME": str(home)})
    (line,) = lines_after_ready(loader, "api ")
    assert line == (
        "api  none: no API schema: the gateway has no route for hello until the project has an "
        "ai_api.yml (or an Api class in wrapper.py); `asectl loader new NAME` scaffolds one"
    )


def test_with_the_scaffolded_schema_loader_run_prints_api_docs_and_a_call(
    tmp_path: Path, centre: EmbeddedServer, loaders: StartLoader
) -> None:
    root = new_project(tmp_path, mode="session")
    home = cluster_home(tmp_path, centre, gateway="http://127.0.0.1:9")
    loader = loaders(root, env={"ASE_HOME": str(home)})
    assert lines_after_ready(loader, "try ") == [
        "api  http://127.0.0.1:9/v1/private/hello  (WebSocket)",
        "docs http://127.0.0.1:9/docs?service=hello",
        f"try  ASE_HOME={home} asectl call hello --session --data 'text=hello ASE'    # in another terminal",
    ]


# -- 2: a broken API definition ----------------------------------------------------------------


def test_loader_test_lists_every_problem_of_ai_api_yml_as_api_create_does(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    edit(root / "ai_api.yml", "  request:\n", "  requets: {}\n  request:\n")
    edit(root / "ai_api.yml", "          type: boolean\n", "          type: boolean\n          minimum: 1\n")
    proc = asectl("loader", "test", "hello", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    created = asectl("api", "create", "-f", "hello/ai_api.yml", "--no-push", cwd=tmp_path)
    assert created.returncode == 1
    # `api create`: "error: FILE: N problem(s) ...; nothing was written", then one problem a line.
    assert problems == [line.strip() for line in created.stderr.splitlines()[1:]]
    yml = root / "ai_api.yml"
    assert problems == [
        f"hello/ai_api.yml:{line_of(yml, 'requets')}: spec.requets: unknown key 'requets'; did you mean "
        "'request'?",
        f"hello/ai_api.yml:{line_of(yml, 'upper:')}: spec.request.parameters.properties.upper: minimum "
        "applies to integer or number, not to type boolean",
    ]
    # The table form names them too (on stderr, before the cases).
    proc = asectl("loader", "test", "hello", cwd=tmp_path)
    assert proc.returncode == 1 and f"problem: {problems[0]}" in proc.stderr


def test_loader_test_reports_the_seed_api_class_min_over_max_as_api_gen_does(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    (root / "ai_api.yml").unlink()
    with (root / "wrapper.py").open("a") as fh:
        fh.write(SEED_API_CLASS)
    proc = asectl("loader", "test", "hello", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    gen = asectl("api", "gen", "hello/wrapper.py", "--no-push", cwd=tmp_path)
    assert gen.returncode == 1
    assert problems == [line.strip() for line in gen.stderr.splitlines()[1:]]
    assert len(problems) == 1 and re.fullmatch(
        r"hello/wrapper\.py:\d+: param1: minimum 11 > maximum 10: .*", problems[0]
    ), problems


def test_a_case_the_gateway_refuses_fails_locally_with_the_gateways_message(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    repeat = "        repeat:\n          type: integer\n          minimum: 1\n          maximum: 10\n"
    edit(root / "ai_api.yml", "        upper:\n", repeat + "        upper:\n")
    edit(root / "tests" / "hello.yml", "{upper: true}", "{upper: true, repeat: 11}")
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1
    (hello,) = [c for c in json.loads(proc.stdout)["cases"] if c["name"] == "hello"]
    # What the gateway answers this body (its webgate validator, the same module).
    assert (hello["code"], hello["message"]) == (
        10163,
        "parameter.hello.repeat: 11 is greater than the maximum of 10",
    )
    assert hello["reason"] == (
        "expected code 0, got 10163 (parameter.hello.repeat: 11 is greater than the maximum of 10)"
    )


def test_loader_run_refuses_a_broken_definition_in_one_line(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    edit(
        root / "ai_api.yml",
        "          type: boolean\n",
        "          type: integer\n          minimum: 11\n          maximum: 10\n",
    )
    proc = asectl("loader", "run", "hello", "--standalone", cwd=tmp_path, timeout=30)
    assert proc.returncode == 1
    assert one_line_error(proc) == (
        "error: cannot serve hello: 1 problem in its API definition, so no gateway would serve it: "
        f"hello/ai_api.yml:{line_of(root / 'ai_api.yml', 'upper:')}: spec.request.parameters.properties."
        "upper: minimum 11 > maximum 10: no "
        "value can satisfy both; fix it and run again (`asectl loader test hello` checks it without a server)"
    )


def test_loader_run_refuses_the_seed_api_class_when_it_would_push_it(
    tmp_path: Path, centre: EmbeddedServer
) -> None:
    root = new_project(tmp_path)
    (root / "ai_api.yml").unlink()
    with (root / "wrapper.py").open("a") as fh:
        fh.write(SEED_API_CLASS)
    home = cluster_home(tmp_path, centre)
    proc = asectl("loader", "run", "hello", home=home, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert line.startswith("error: cannot serve hello: 1 problem in its API definition")
    assert re.search(r"hello/wrapper\.py:\d+: param1: minimum 11 > maximum 10", line), line


# -- 3: an edited schema that the config centre does not have ----------------------------------


def test_an_edited_schema_is_said_on_start_and_push_schema_replaces_it(
    tmp_path: Path, centre: EmbeddedServer, loaders: StartLoader
) -> None:
    root = new_project(tmp_path)
    home = cluster_home(tmp_path, centre)
    env = {"ASE_HOME": str(home)}
    first = loaders(root, env=env)
    item = wait_for(lambda: config_item(centre, home, "hello", "hello.json"), 20, "the schema pushed", 0.1)
    assert item.revision == 1
    assert first.stop() == 0

    edit(root / "ai_api.yml", "the text, echoed", "the text, echoed back")
    second = loaders(root, env=env)
    wait_for(lambda: "differs from" in second.stderr(), 20, "the warning about the stale schema")
    (warning,) = [line for line in second.stderr().splitlines() if "differs from" in line]
    path = f"{ClusterSettings.load(home).project}/default/hello/1.0.0/hello.json"  # type: ignore[union-attr]
    assert warning.endswith(
        f"WARNING the config centre's {path} (revision 1) differs from {root / 'ai_api.yml'}, and the "
        f"gateway serves the config centre's: to replace it, run `asectl loader run {root} --push-schema`"
    )
    assert config_item(centre, home, "hello", "hello.json").revision == 1  # kept, as said
    assert second.stop() == 0

    third = loaders(root, "--push-schema", env=env)
    wait_for(lambda: "replaced the schema" in third.stderr(), 20, "the schema replaced")
    item = config_item(centre, home, "hello", "hello.json")
    assert item.revision == 2 and b"the text, echoed back" in item.content
    assert "differs from" not in third.stderr()


def test_push_schema_needs_a_cluster(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    proc = asectl("loader", "run", root, "--push-schema", "--standalone")
    assert proc.returncode == 2
    assert "--push-schema writes the schema to the cluster's config centre" in one_line_error(proc)
    proc = asectl("loader", "run", root, "--push-schema", home=tmp_path / "empty-home")
    assert proc.returncode == 1
    assert one_line_error(proc).endswith("run `asectl init` (or `asectl setup`) first")


# -- 5: a wrapper's exception: its traceback, and no flood at --log-level debug ----------------

RAISING = (
    '    if params.get("upper") == "true":\n        text = text.upper()\n',
    '    if params.get("upper") == "true":\n        text = shout(text)\n',
)
SHOUT = "\n\ndef shout(text):\n    return {}[text]  # a bug: KeyError\n"


def raising_project(tmp_path: Path) -> Path:
    root = new_project(tmp_path)
    edit(root / "wrapper.py", *RAISING)
    with (root / "wrapper.py").open("a") as fh:
        fh.write(SHOUT)
    return root


def shout_line(root: Path) -> int:
    lines = (root / "wrapper.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "return {}[text]" in line)


def test_loader_test_shows_where_the_wrapper_raised(tmp_path: Path) -> None:
    root = raising_project(tmp_path)
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1
    (hello,) = [c for c in json.loads(proc.stdout)["cases"] if c["name"] == "hello"]
    assert hello["reason"] == "expected code 0, got 10910 (wrapperOnceExec raised KeyError: 'hello')"
    trace = hello["traceback"]
    assert trace.startswith("Traceback (most recent call last):\n")
    assert f'File "{root.resolve() / "wrapper.py"}", line {shout_line(root)}, in shout' in trace
    assert trace.endswith("KeyError: 'hello'") and "host.py" not in trace
    proc = asectl("loader", "test", root)
    assert "hello: the wrapper raised\nTraceback (most recent call last):" in proc.stdout
    assert f"line {shout_line(root)}, in shout" in proc.stdout


def test_loader_test_shows_where_wrapper_init_raised(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    edit(
        root / "wrapper.py",
        '        _settings["max_len"] = int(config.get("max_len", "1000"))\n',
        '        _settings["max_len"] = int(config.get("prefix", "oops") or "oops")\n',
    )
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1
    (problem,) = json.loads(proc.stdout)["problems"]
    line = line_of(root / "wrapper.py", '"oops"')
    assert problem.startswith(
        "wrapperInit failed (10910): wrapperInit raised ValueError: invalid literal for int() with base 10: "
        "'oops'\nTraceback (most recent call last):\n"
    )
    assert f'File "{root.resolve() / "wrapper.py"}", line {line}, in wrapperInit' in problem


def test_the_loader_log_has_the_traceback_once_then_one_line(tmp_path: Path, loaders: StartLoader) -> None:
    root = raising_project(tmp_path)
    loader = loaders(root, "--standalone")
    client = loader.client()
    req = Request(params={"upper": "true"}, items=[DataItem("text", b"hi")])
    for _ in range(2):
        assert client.once(req).code == 10910
    where = f"{root.resolve() / 'wrapper.py'}:{shout_line(root)}"
    wait_for(lambda: "traceback logged before" in loader.stderr(), 10, "the second failure logged")
    log = loader.stderr()
    assert (
        f"ERROR wrapperOnceExec raised KeyError: 'hi' (at {where})\nTraceback (most recent call last):" in log
    )
    assert f"line {shout_line(root)}, in shout\n    return {{}}[text]" in log
    assert f"ERROR wrapperOnceExec raised KeyError: 'hi' (at {where}; traceback logged before)" in log
    assert log.count("Traceback") == 1


def test_log_level_debug_is_not_flooded_by_the_libraries(
    tmp_path: Path, centre: EmbeddedServer, loaders: StartLoader
) -> None:
    root = new_project(tmp_path)
    home = cluster_home(tmp_path, centre)
    loader = loaders(root, "--log-level", "debug", "--ttl", "2", env={"ASE_HOME": str(home)})
    client = loader.client()
    for _ in range(3):
        assert client.once(Request(items=[DataItem("text", b"hi")])).code == 0
    # Registered and pushed: requests to the config centre were made (and heartbeats go on).
    wait_for(lambda: "pushed the schema" in loader.stderr(), 20, "the schema pushed")
    assert loader.stop(signal.SIGTERM) == 0
    log = loader.stderr()
    # gRPC's core said "Loaded running loop" and "Using AsyncIOEngine" at DEBUG, a line per channel
    # and server; the HTTP clients a line per request; the event loop its selector.
    for noise in (
        "_cygrpc",
        "Loaded running loop",
        "AsyncIOEngine",
        "HTTP Request:",
        "connect_tcp",
        "selector",
    ):
        assert noise not in log, log
    assert "INFO registered hello" in log and "INFO draining" in log


# -- 6: wrapperOnceExec returning None ---------------------------------------------------------


def test_wrapper_once_exec_returning_none_is_a_contract_error(tmp_path: Path) -> None:
    root = new_project(tmp_path)
    edit(
        root / "wrapper.py",
        '                     "desc": {"encoding": "utf8"}})\n    return 0\n',
        '                     "desc": {"encoding": "utf8"}})\n',
    )
    proc = asectl("loader", "test", root, "--json")
    assert proc.returncode == 1
    (hello,) = [c for c in json.loads(proc.stdout)["cases"] if c["name"] == "hello"]
    assert (hello["code"], hello["message"]) == (
        10909,
        f"wrapperOnceExec of {root.resolve() / 'wrapper.py'} returned None: return 0 once the results "
        "are appended to respData, or an error code (its text comes from wrapperError)",
    )


# -- 8: ase.toml and ai_api.yml naming the service differently ---------------------------------


@pytest.mark.parametrize("command", ["test", "run"])
def test_a_name_mismatch_is_refused_saying_which_file_to_change(tmp_path: Path, command: str) -> None:
    root = new_project(tmp_path, "wordcount")
    edit(root / "ase.toml", 'name = "wordcount"', 'name = "ren"')
    proc = asectl(
        "loader", command, "wordcount", *(["--standalone"] if command == "run" else []), cwd=tmp_path
    )
    assert proc.returncode == 1
    assert one_line_error(proc) == (
        f"error: ase.toml and ai_api.yml disagree: [service] name is 'ren' in {root.resolve() / 'ase.toml'} "
        f"but metadata.serviceName is 'wordcount' in {root.resolve() / 'ai_api.yml'}; set name = "
        '"wordcount" in ase.toml (or delete it there: ai_api.yml\'s then counts)'
    )
