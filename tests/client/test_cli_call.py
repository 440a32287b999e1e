"""``asectl call`` end to end: the real command as a subprocess against the real gateway."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from ase_serving.cli.call import _value, chunks
from tests.gateway.support import Cluster, GatewayProcess
from tests.store.etcd_server import free_port
from tests.support import asectl, one_line_error

Call = Callable[..., subprocess.CompletedProcess[str]]


def flags(creds: dict[str, str]) -> list[str]:
    return ["--app-id", creds["app_id"], "--api-key", creds["api_key"], "--api-secret", creds["api_secret"]]


@pytest.fixture
def call(gw: GatewayProcess, consumer: dict[str, str], tmp_path: Path) -> Call:
    """``asectl call --gateway URL`` with the consumer's credentials as flags (HMAC signing)."""
    home = tmp_path / "home"
    home.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return asectl("call", "--gateway", gw.url, *flags(consumer), *args, home=home)

    return run


def test_param_values_are_json_when_they_parse() -> None:
    assert _value("50") == 50
    assert _value("true") is True
    assert _value('"50"') == "50"
    assert _value("[1, 2]") == [1, 2]
    assert _value("fast") == "fast"
    assert _value("") == ""


def test_utf8_text_is_chunked_between_characters() -> None:
    text = "héllo wörld ✓".encode()
    pieces = list(chunks(text, 3, utf8=True))
    assert b"".join(pieces) == text
    assert all(len(p) <= 3 for p in pieces)
    assert [p.decode() for p in pieces]  # every piece is whole characters
    assert list(chunks(b"\xc3\xa9\xc3\xa9", 1, utf8=True)) == [b"\xc3", b"\xa9", b"\xc3", b"\xa9"]
    assert list(chunks(b"abcdefg", 3, utf8=False)) == [b"abc", b"def", b"g"]


def test_once_prints_the_text_output(call: Call) -> None:
    done = call("binecho", "--param", "upper=1", "--param", "speed=50", "--data", "text=hello ase")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "HELLO ASE\n"


def test_data_from_a_file(call: Call, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("from a file\nline 2 ✓")
    done = call("binecho", "--data", f"text=@{src}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "from a file\nline 2 ✓\n"


def test_json_prints_the_response_with_decoded_text(call: Call) -> None:
    done = call("binecho", "--data", "text=hi", "--json")
    assert done.returncode == 0, done.stderr
    doc = orjson.loads(done.stdout)
    assert doc["header"]["code"] == 0 and doc["header"]["sid"].startswith("ase")
    assert doc["payload"]["text"]["text"] == "aGk=" and doc["payload"]["text"]["text_utf8"] == "hi"


def test_binary_outputs_are_sized_and_written_with_out(call: Call, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 3
    (tmp_path / "blob").write_bytes(blob)
    out = tmp_path / "out"
    done = call(
        "binecho", "--data", f"audio:audio=@{tmp_path / 'blob'}", "--attr", "audio.encoding=raw",
        "--data", "text=x", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [
        f"audio: 768 bytes (audio) -> {out / 'audio'}",
        "text: x",
    ]
    assert (out / "audio").read_bytes() == blob


def test_a_session_streams_the_file_in_chunks(call: Call, tmp_path: Path) -> None:
    story = "once upon a time ✓ the end"
    (tmp_path / "story.txt").write_text(story)
    done = call("stream_echo", "--session", "--data", f"text=@{tmp_path / 'story.txt'}", "--chunk", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Every result but the last is marked partial, the last final.
    assert all(line.startswith("[partial] ") for line in lines[:-1]) and lines[-1].startswith("[final] ")
    texts = [line.split("] ", 1)[1] for line in lines]
    assert "".join(texts) == story
    assert len(texts) >= len(story.encode()) // 5 and all(len(t.encode()) <= 5 for t in texts)


def test_a_session_with_json_prints_one_line_per_result(call: Call) -> None:
    done = call("stream_echo", "--session", "--data", "text=abcdefgh", "--chunk", "3", "--json")
    assert done.returncode == 0, done.stderr
    docs = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [d["header"]["status"] for d in docs] == [0, 1, 2]
    assert [d["payload"]["echo"]["text_utf8"] for d in docs] == ["abc", "def", "gh"]


def test_a_gateway_error_prints_its_code_and_message_and_exits_1(call: Call) -> None:
    done = call("binecho", "--param", "speed=500", "--data", "text=x")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("error: 10163: ") and "maximum of 100" in done.stderr
    done = call("binecho", "--param", "speed=500", "--data", "text=x", "--json")
    assert done.returncode == 1 and orjson.loads(done.stdout)["header"]["code"] == 10163
    done = call("nosuch", "--data", "text=x")
    assert done.returncode == 1 and "error: 10404: " in done.stderr and "nosuch" in done.stderr
    done = call("stream_echo", "--session", "--data", "text:audio=AAAA")
    assert done.returncode == 1 and "error: 10163: " in done.stderr, done.stderr


def test_bad_flags_say_what_to_give(call: Call) -> None:
    done = call("binecho", "--data", "text")
    assert done.returncode == 2 and "--data 'text': give NAME[:TYPE]=@FILE" in done.stderr
    done = call("binecho", "--data", "text=@/nonexistent/file")
    assert done.returncode == 2 and "cannot read /nonexistent/file" in done.stderr
    done = call("binecho", "--data", "x:pdf=1")
    assert done.returncode == 2 and "type 'pdf' is not one of text, audio" in done.stderr
    done = call("binecho", "--data", "text=x", "--attr", "nope.encoding=raw")
    assert done.returncode == 2 and "one of the --data inputs (text)" in done.stderr


def test_no_gateway_or_no_app_id_says_what_to_run(tmp_path: Path, gw: GatewayProcess) -> None:
    done = asectl("call", "binecho", "--data", "text=x", "--app-id", "test", home=tmp_path)
    assert done.returncode == 1
    assert "no gateway" in done.stderr and "--gateway" in done.stderr and "asectl init" in done.stderr
    done = asectl("call", "binecho", "--data", "text=x", env={"ASE_GATEWAY_URL": gw.url}, home=tmp_path)
    assert done.returncode == 1
    assert "no app id" in done.stderr and "--app-id" in done.stderr and "asectl init" in done.stderr
    assert "asectl consumer add" in done.stderr


def test_credentials_from_the_environment(
    tmp_path: Path, gw: GatewayProcess, consumer: dict[str, str]
) -> None:
    env = {"ASE_GATEWAY_URL": gw.url, "ASE_APP_ID": consumer["app_id"], "ASE_API_KEY": consumer["api_key"]}
    done = asectl("call", "binecho", "--data", "text=key", env=env, home=tmp_path)
    assert (done.returncode, done.stdout) == (0, "key\n"), done.stderr
    done = asectl(
        "call",
        "binecho",
        "--data",
        "text=signed",
        env={**env, "ASE_API_SECRET": consumer["api_secret"]},
        home=tmp_path,
    )
    assert (done.returncode, done.stdout) == (0, "signed\n"), done.stderr
    done = asectl(
        "call", "binecho", "--data", "text=x", env={**env, "ASE_API_SECRET": "wrong"}, home=tmp_path
    )
    assert done.returncode == 1 and "error: 10401: the signature does not match" in done.stderr
    assert consumer["api_secret"] not in done.stderr + done.stdout


def test_credentials_from_the_home(tmp_path: Path, gw: GatewayProcess, consumer: dict[str, str]) -> None:
    env = {"ASE_GATEWAY_URL": gw.url}
    (tmp_path / "credentials.json").write_bytes(orjson.dumps(consumer))
    done = asectl(
        "call", "stream_echo", "--session", "--data", "text=home", "--chunk", "2", env=env, home=tmp_path
    )
    assert (done.returncode, done.stdout) == (0, "[partial] ho\n[final] me\n"), done.stderr
    # Another app id on the command line: the file's key and secret are not sent with it.
    done = asectl("call", "binecho", "--app-id", "other", "--data", "text=x", env=env, home=tmp_path)
    assert done.returncode == 1 and "error: 10401: authentication required" in done.stderr
    (tmp_path / "credentials.json").write_text("{oops")
    done = asectl("call", "binecho", "--data", "text=x", env=env, home=tmp_path)
    assert done.returncode == 1 and "credentials.json: unreadable" in done.stderr


def test_an_unreachable_gateway_is_one_line_with_the_url(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        done = asectl("call", "binecho", "--gateway", url, "--app-id", "a", "--data", "text=x", home=tmp_path)
    assert done.returncode == 1
    assert (
        done.stderr.count("\n") == 1
        and f"cannot reach the gateway at {url}/openapi/binecho.json" in done.stderr
    )


def test_an_input_given_without_a_type_takes_the_schemas_data_field(call: Call, tmp_path: Path) -> None:
    """binecho's input "audio" is of type audio: `--data audio=@FILE` used to be sent as text and
    fail with payload.audio.audio is required."""
    blob = bytes(range(256)) * 2
    (tmp_path / "x.pcm").write_bytes(blob)
    out = tmp_path / "out"
    done = call(
        "binecho", "--data", f"audio=@{tmp_path / 'x.pcm'}", "--attr", "audio.encoding=raw", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"audio: 512 bytes (audio) -> {out / 'audio'}\n"
    assert (out / "audio").read_bytes() == blob
    # An input the service does not have is named with the ones it has, before anything is sent.
    done = call("binecho", "--data", "nope=x")
    assert done.returncode == 2
    assert (
        one_line_error(done)
        == "error: --data 'nope=x': binecho has no input 'nope' (its inputs: text, audio)"
    )


def test_a_call_of_the_wrong_kind_names_the_flag_to_change(call: Call) -> None:
    done = call("stream_echo", "--data", "text=hi")
    assert done.returncode == 2
    assert one_line_error(done) == (
        "error: stream_echo takes sessions only (a WebSocket), not once requests: add --session "
        "(`asectl call stream_echo --session --data ...` streams each input in frames)"
    )
    done = call("binecho", "--session", "--data", "text=hi")
    assert done.returncode == 2
    assert one_line_error(done) == (
        "error: binecho takes once requests only (HTTP POST), not sessions: leave out --session"
    )


def test_no_such_service_lists_the_services_served(call: Call, gw: GatewayProcess) -> None:
    done = call("nosuch", "--data", "text=x")
    assert done.returncode == 1
    assert one_line_error(done) == (
        "error: 10404: no live service 'nosuch': /openapi.json lists the services served; "
        f"services served at {gw.url}: binecho, echo, stream_echo"
    )
    done = call("/v1/private/nosuch", "--data", "text=x")
    assert done.returncode == 1
    line = one_line_error(done)
    assert line.startswith("error: 10404: no service at /v1/private/nosuch")
    assert line.endswith(f"; services served at {gw.url}: binecho, echo, stream_echo")


def test_setup_stores_a_gateway_that_call_then_uses(
    tmp_path: Path, cluster: Cluster, gw: GatewayProcess, consumer: dict[str, str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "credentials.json").write_bytes(orjson.dumps(consumer))
    centre = cluster.centre
    login = ("--address", centre.url, "--account", centre.account, "--password", centre.password)
    # A URL where no gateway answers is refused, and nothing is saved.
    dead = f"http://127.0.0.1:{free_port()}"
    done = asectl("setup", *login, "--gateway", dead, home=home)
    assert done.returncode == 1 and not (home / "cluster.json").exists()
    assert one_line_error(done).startswith(f"error: --gateway {dead}: no answer (ConnectError")
    done = asectl("setup", *login, "--gateway", gw.url, home=home)
    assert done.returncode == 0, done.stderr
    assert f"gateway {gw.url} answers; it serves project default, group default" in done.stdout
    done = asectl("call", "binecho", "--data", "text=via setup", home=home)
    assert (done.returncode, done.stdout) == (0, "via setup\n"), done.stderr
    # A later setup without --gateway keeps it; --gateway "" forgets it.
    assert asectl("setup", *login, home=home).returncode == 0
    assert asectl("call", "binecho", "--data", "text=kept", home=home).stdout == "kept\n"
    assert asectl("setup", *login, "--gateway", "", home=home).returncode == 0
    done = asectl("call", "binecho", "--data", "text=x", home=home)
    assert done.returncode == 1 and "`asectl setup --gateway URL`" in done.stderr
