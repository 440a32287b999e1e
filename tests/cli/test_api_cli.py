"""`asectl api create/gen`: files written, push asked on a terminal, pushed to a real embedded
config centre."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.cli.cluster_support import on_terminal, set_up
from tests.gateway.support import Cluster
from tests.schema.support import CODE, SEED_YAML, YAML, project
from tests.schema.support import SEED_CODE as SEED
from tests.store.embedded_server import EmbeddedServer
from tests.support import ASECTL, asectl, one_line_error

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def home(tmp_path: Path, centre: EmbeddedServer) -> Path:
    home = tmp_path / "home"
    set_up(home, centre.url, "admin", centre.password)
    return home


def items(home: Path, project: str, group: str) -> list[dict[str, object]]:
    proc = asectl("config", "list", "--project", project, "--group", group, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    listed: list[dict[str, object]] = json.loads(proc.stdout)["items"]
    return listed


def unique(tmp_path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", tmp_path.name)[:40]


def test_create_writes_schemas_name_json_and_does_not_push_without_a_terminal(
    home: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = asectl("api", "create", "-f", SEED_YAML, cwd=work, home=home)
    assert proc.returncode == 0, proc.stderr
    written = work / "schemas" / "my-api-schema.json"
    # The two names differ (the seed's configFilname: xxxx.json): the line says which is which.
    assert proc.stdout.strip() == (
        "wrote schemas/my-api-schema.json (service image-detect 1.0.0; its config item is xxxx.json: "
        "metadata.configFileName names the item, metadata.name the file)"
    )
    doc = json.loads(written.read_text())
    assert doc["meta"]["serviceId"] == "image-detect"
    # The warnings name the right spellings, on stderr.
    assert "'paramters' is a misspelling of 'parameters'" in proc.stderr
    assert items(home, "guiderAllService", "gas") == []


def test_create_push_goes_to_the_yamls_project_and_group(home: Path, tmp_path: Path) -> None:
    text = SEED_YAML.read_text().replace("guiderAllService", unique(tmp_path))
    (tmp_path / "ai_api.yml").write_text(text)
    out = tmp_path / "out"
    proc = asectl("api", "create", "-f", tmp_path / "ai_api.yml", "-o", out, "--push", "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["file"] == str(out / "my-api-schema.json")
    pushed = doc["pushed"]
    assert (pushed["project"], pushed["group"], pushed["service"], pushed["version"], pushed["name"]) == (
        unique(tmp_path),
        "gas",
        "image-detect",
        "1.0.0",
        "xxxx.json",
    )
    # The region named (dx) is not set up here: said, and the current one is used.
    assert "region 'dx' (metadata.region) is not set up" in proc.stderr
    show = asectl(
        "config", "show", "xxxx.json", "--project", unique(tmp_path), "--group", "gas", "--json", home=home
    )
    assert show.returncode == 0, show.stderr
    assert json.loads(json.loads(show.stdout)["content"]) == json.loads(
        (out / "my-api-schema.json").read_text()
    )


def test_create_asks_on_a_terminal(home: Path, tmp_path: Path) -> None:
    text = SEED_YAML.read_text().replace("guiderAllService", unique(tmp_path))
    (tmp_path / "ai_api.yml").write_text(text)
    env = {**os.environ, "ASE_HOME": str(home)}
    answers = [("Push it to the config centre?", "y")]
    args = [*ASECTL, "api", "create", "-f", str(tmp_path / "ai_api.yml"), "-o", str(tmp_path / "s")]
    returncode, output = on_terminal(args, env, answers)
    assert returncode == 0, output
    assert answers == []
    assert "pushed image-detect/1.0.0/xxxx.json" in output
    assert [i["name"] for i in items(home, unique(tmp_path), "gas")] == ["xxxx.json"]
    # Answering no writes the file and pushes nothing.
    answers = [("Push it to the config centre?", "n")]
    (tmp_path / "ai_api.yml").write_text(text.replace("xxxx.json", "other.json"))
    returncode, output = on_terminal(args, env, answers)
    assert (returncode, answers) == (0, []), output
    assert [i["name"] for i in items(home, unique(tmp_path), "gas")] == ["xxxx.json"]


def test_create_refuses_a_bad_file_with_every_problem_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(SEED_YAML.read_text().replace("minimum: 50", "minimum: 500000").replace("- vcn", "- vcnn"))
    proc = asectl("api", "create", "-f", bad, "-o", tmp_path / "out", "--push", home=home)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    problems = [line.strip() for line in proc.stderr.splitlines() if line.startswith("  ")]
    assert problems == [
        f"{bad}:20: spec.request.parameters.properties.speed: "
        "minimum 500000 > maximum 200000: no value can satisfy both",
        f"{bad}:38: spec.request.parameters.required[0]: "
        "required parameter 'vcnn' is not defined (defined: isauto, someother, speed, vcn)",
    ]
    assert "2 problem(s) in the API definition; nothing was written" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_create_without_a_cluster_writes_the_file_and_says_how_to_push(tmp_path: Path) -> None:
    (tmp_path / "ai_api.yml").write_text(YAML)
    out = tmp_path / "out"
    proc = asectl(
        "api", "create", "-f", tmp_path / "ai_api.yml", "-o", out, "--push", home=tmp_path / "nohome"
    )
    assert proc.returncode == 1
    assert (out / "tts.json").is_file()
    assert (
        one_line_error(proc) == "error: cannot push: no cluster set up: run `asectl init` or `asectl setup`"
    )


def test_gen_writes_the_code_defined_schema_and_pushes_it(home: Path, tmp_path: Path) -> None:
    wrapper = project(tmp_path, CODE, "tts")
    (wrapper.parent / "ase.toml").write_text('[service]\nname = "tts"\nversion = "2.0"\n')
    settings = json.loads((home / "cluster.json").read_text())
    settings["regions"]["default"]["project"] = unique(tmp_path)
    (home / "cluster.json").write_text(json.dumps(settings))
    proc = asectl("api", "gen", wrapper, "-o", tmp_path / "out", "--push", home=home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"wrote {tmp_path / 'out' / 'tts.json'} (service tts 2.0)",
        f"pushed tts/2.0/tts.json to {unique(tmp_path)}/default: revision 1",
    ]
    assert json.loads((tmp_path / "out" / "tts.json").read_text())["meta"]["interface"] == ["once"]


def test_gen_refuses_the_seeds_example_naming_param1(home: Path, tmp_path: Path) -> None:
    wrapper = project(tmp_path, SEED, "seed")
    proc = asectl("api", "gen", wrapper, "-o", tmp_path / "out", "--no-push", home=home)
    assert proc.returncode == 1
    assert f"{wrapper}:6: param1: minimum 11 > maximum 10" in proc.stderr
    assert not (tmp_path / "out").exists()
    missing = asectl("api", "gen", tmp_path / "nothing.py", home=home)
    assert missing.returncode == 2
    assert "no such file" in one_line_error(missing)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "../../pwned"),
        ("name", "sub/dir"),
        ("name", ".hidden"),
        ("configFilname", "../x.json"),
        ("projectName", "a/b"),
    ],
)
def test_create_refuses_names_that_would_leave_the_output_folder(
    home: Path, tmp_path: Path, field: str, value: str
) -> None:
    text = SEED_YAML.read_text()
    pattern = rf"(?m)^(\s*){field}:.*$"
    assert re.search(pattern, text), f"the seed YAML has no {field}"
    (tmp_path / "ai_api.yml").write_text(re.sub(pattern, rf"\g<1>{field}: '{value}'", text, count=1))
    out = tmp_path / "deep" / "out"
    proc = asectl("api", "create", "-f", tmp_path / "ai_api.yml", "-o", out, home=home)
    assert proc.returncode != 0
    shown = field.replace("configFilname", "configFileName")
    assert f"metadata.{shown} {value!r}" in proc.stderr, proc.stderr
    written = [p for p in tmp_path.rglob("*.json") if home not in p.parents]
    assert written == []  # nothing written, inside the folder or outside it


def _with_gateway(home: Path, url: str | None) -> None:
    settings = json.loads((home / "cluster.json").read_text())
    settings["regions"]["default"]["components"] = {"gateway": url} if url else {}
    (home / "cluster.json").write_text(json.dumps(settings))


def test_push_warns_when_no_gateway_of_the_cluster_serves_it(
    home: Path, tmp_path: Path, centre: EmbeddedServer
) -> None:
    """The seed's metadata (projectName, group) sends the schema where the cluster's gateway may
    not look: said in one line, with the gateway and the scope it serves."""
    project = unique(tmp_path)
    seed = tmp_path / "ai_api.yml"
    seed.write_text(SEED_YAML.read_text().replace("guiderAllService", project))
    elsewhere = tmp_path / "elsewhere.yml"
    elsewhere.write_text(seed.read_text().replace("group: gas", "group: other"))
    start = f"`python -m ase_serving.gateway --project {project} --group other`"
    with Cluster(centre, tmp_path / "gateway-home").gateway("--project", project, "--group", "gas") as gw:
        _with_gateway(home, gw.url)
        served = asectl("api", "create", "-f", seed, "-o", tmp_path / "out", "--push", home=home)
        assert served.returncode == 0, served.stderr
        assert "warning: pushed" not in served.stderr
        proc = asectl(
            "api", "create", "-f", elsewhere, "-o", tmp_path / "out", "--push", "--force", home=home
        )
        assert proc.returncode == 0, proc.stderr
        assert (
            f"warning: pushed to project {project}, group other (metadata: projectName {project}, group "
            f"other), but the gateway at {gw.url} serves project {project}, group gas: no gateway of this "
            f"cluster serves it; push where it serves (drop the project/group from the definition), or "
            f"start a gateway for it: {start}\n"
        ) in proc.stderr
    # No gateway known: compared with this machine's own project and group.
    _with_gateway(home, None)
    proc = asectl("api", "create", "-f", elsewhere, "-o", tmp_path / "out", "--push", home=home)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"warning: pushed to project {project}, group other (metadata: projectName {project}, group other), "
        "not to this machine's project default, group default (the one `asectl init`'s gateway serves): "
        f"only a gateway started for it serves it: {start}\n"
    ) in proc.stderr


def test_push_of_a_second_schema_for_a_route_is_refused(home: Path, tmp_path: Path) -> None:
    project = unique(tmp_path)
    seed = tmp_path / "ai_api.yml"
    seed.write_text(SEED_YAML.read_text().replace("guiderAllService", project))
    assert asectl("api", "create", "-f", seed, "-o", tmp_path / "out", "--push", home=home).returncode == 0
    # The same service under another item name (configFileName changed): two items, one route.
    renamed = tmp_path / "renamed.yml"
    renamed.write_text(seed.read_text().replace("xxxx.json", "yyyy.json"))
    proc = asectl("api", "create", "-f", renamed, "-o", tmp_path / "out", "--push", home=home)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # The seed's own warnings (its misspellings) come first; the refusal is the last line.
    assert proc.stderr.splitlines()[-1].startswith(
        "error: image-detect/1.0.0/yyyy.json: route /v1/private/image-detect is already asked for by "
        "image-detect/1.0.0/xxxx.json"
    )
    assert [i["name"] for i in items(home, project, "gas")] == ["xxxx.json"]
