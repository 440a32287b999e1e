"""The test-case format (parsing, data resolution, stream cutting) and the in-process runner."""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from ase_serving.loader.testcases import TestCase, load_cases, load_file
from ase_serving.loader.testrun import Report, run_project

PLUGINS = Path(__file__).parents[1] / "wrapper" / "plugins"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def one(path: Path) -> TestCase:
    (case,) = load_file(path)
    assert case.problem is None, case.problem
    return case


# -- the format -------------------------------------------------------------------------------


def test_once_case_resolves_utf8_file_and_keeps_base64(tmp_path: Path) -> None:
    (tmp_path / "img.bin").write_bytes(b"\x89PNG")
    case = one(
        write(
            tmp_path / "hello.yml",
            """
request:
  header: {app_id: test}
  payload:
    a: {encoding: utf8, text: {utf8: "héllo"}}
    b: {image: {file: img.bin}}
    c: {audio: "AAE="}
expect: {outputs: [echo], payload: {echo: {utf8: hi}, raw: "AAE="}, contains: {echo: Hi}}
""",
        )
    )
    assert (case.name, case.mode, case.frames) == ("hello", "once", [])
    payload = case.request["payload"]
    assert payload["a"] == {"encoding": "utf8", "text": b64("héllo".encode())}
    assert payload["b"] == {"image": b64(b"\x89PNG")}
    assert payload["c"] == {"audio": "AAE="}
    assert case.expect.code == 0 and case.expect.outputs == ["echo"]
    assert case.expect.payload == {"echo": b"hi", "raw": b"\x00\x01"}
    assert case.expect.contains == {"echo": "Hi"}


def test_a_list_of_cases_gets_indexed_names_and_json_works(tmp_path: Path) -> None:
    cases = load_file(write(tmp_path / "many.json", '[{"request": {}}, {"name": "named"}, {}]'))
    assert [c.name for c in cases] == ["many#1", "named", "many#3"]
    assert all(c.problem is None for c in cases)


def test_session_mode_is_the_default_with_frames(tmp_path: Path) -> None:
    case = one(
        write(
            tmp_path / "s.yaml",
            """
request: {payload: {t: {text: {utf8: a}}}}
frames:
  - {header: {status: 2}, payload: {t: {status: 2, text: {utf8: b}}}}
""",
        )
    )
    assert case.mode == "session"
    assert case.request["header"] == {"status": 0}  # the first frame defaults to status 0
    assert case.frames == [{"header": {"status": 2}, "payload": {"t": {"status": 2, "text": b64(b"b")}}}]


def test_stream_is_cut_into_frames(tmp_path: Path) -> None:
    (tmp_path / "a.pcm").write_bytes(b"0123456789")
    case = one(
        write(
            tmp_path / "s.yml",
            """
request:
  header: {app_id: t}
  payload: {audio: {encoding: raw, sample_rate: 16000}}
stream: {payload: audio, file: a.pcm, chunk: 4}
""",
        )
    )
    assert case.mode == "session"
    first = case.request["payload"]["audio"]
    assert first == {"encoding": "raw", "sample_rate": 16000, "status": 0, "audio": b64(b"0123")}
    assert case.request["header"] == {"app_id": "t", "status": 0}
    assert [
        (f["header"]["status"], base64.b64decode(f["payload"]["audio"]["audio"])) for f in case.frames
    ] == [
        (1, b"4567"),
        (2, b"89"),
    ]
    assert case.frames[0]["payload"]["audio"]["sample_rate"] == 16000


def test_a_one_chunk_stream_gets_an_empty_last_frame(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"ab")
    case = one(write(tmp_path / "s.yml", "stream: {payload: t, file: a.txt, chunk: 10, type: text}\n"))
    assert case.request["payload"]["t"] == {"status": 0, "text": b64(b"ab")}
    assert case.frames == [{"header": {"status": 2}, "payload": {"t": {"status": 2, "text": ""}}}]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\nrequest: {}\nexpects: {}\n", "c.yml: unknown key(s) expects"),
        ("mode: batch\n", "mode must be once or session, not 'batch'"),
        ("mode: once\nframes: []\n", "'frames' and 'stream' are for session cases"),
        ("frames: []\nstream: {payload: a, file: f}\n", "either 'frames' or 'stream'"),
        ("request: [1]\n", "c.yml: request must be a mapping, not list"),
        ("frames: {a: 1}\n", "frames must be a list"),
        ("request: {payload: {a: {text: {file: absent.bin}}}}\n", "request.payload.a.text: cannot read"),
        ("request: {payload: {a: {text: {base64: x}}}}\n", "data must be a base64 string, {utf8: text}"),
        ("stream: {payload: a, file: absent.pcm}\n", "stream: cannot read"),
        ("stream: {payload: a, file: f, chunk: 0}\n", "'chunk' must be a positive number"),
        ("stream: {payload: a, file: f, size: 3}\n", "stream: unknown key(s) size"),
        ("expect: {code: ok}\n", "expect: code must be an integer"),
        ("expect: {status: 0}\n", "expect: unknown key(s) status"),
        ("expect: {payload: {a: '%%%'}}\n", "expect: payload.a is not valid base64"),
        ("expect: {outputs: [1]}\n", "outputs must be a list of output names"),
        ("- 3\n- {}\n", "c.yml case 1: a case must be a mapping, not int"),
        ("", "c.yml: a case file holds a mapping (one case) or a list of cases, not empty"),
        ("key: [unclosed\n", "c.yml: cannot parse"),
    ],
)
def test_bad_cases_become_problems_naming_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    case = load_file(write(tmp_path / "c.yml", text))[0]
    assert case.problem is not None and fragment in case.problem, case.problem


def test_load_cases_reads_only_case_files_in_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yml", "name: second\n")
    write(tmp_path / "a.json", '{"name": "first"}')
    write(tmp_path / "notes.txt", "not a case")
    assert [c.name for c in load_cases(tmp_path)] == ["first", "second"]
    assert load_cases(tmp_path / "absent") == []


# -- the runner -------------------------------------------------------------------------------


def make_project(tmp_path: Path, plugin: str, toml: str = "", cases: dict[str, str] | None = None) -> Path:
    root = tmp_path / "proj"
    (root / "tests").mkdir(parents=True)
    shutil.copy(PLUGINS / plugin, root / "wrapper.py")
    if toml:
        (root / "ase.toml").write_text(toml)
    for name, text in (cases or {}).items():
        (root / "tests" / name).write_text(text)
    return root


def by_name(report: Report) -> dict[str, Any]:
    return {c.name: c for c in report.cases}


ONCE_CASES = """
- name: ok
  request: {payload: {text: {text: {utf8: hi}}}}
  expect: {outputs: [echo], payload: {echo: {utf8: hi}}, contains: {echo: HI}}
- name: wrong-output
  request: {payload: {text: {text: {utf8: hi}}}}
  expect: {outputs: [boxes], payload: {echo: {utf8: ho}}, contains: {echo: xyz}}
- name: error-expected
  request: {payload: {text: {text: {utf8: fail}}}}
  expect: {code: 10042, message_contains: REFUSED}
- name: error-unexpected
  request: {payload: {text: {text: {utf8: fail}}}}
- name: wrong-message
  request: {payload: {text: {text: {utf8: fail}}}}
  expect: {code: 10042, message_contains: "too long"}
- name: bad-base64
  request: {payload: {text: {text: "@@"}}}
  expect: {code: 10161}
- name: hang
  request: {payload: {text: {text: {utf8: hang}}}}
  expect: {code: 10114}
"""


@pytest.mark.timeout(10)
def test_once_cases(tmp_path: Path) -> None:
    root = make_project(tmp_path, "once_toy.py", "[loader]\nonce_timeout = 0.3\n", {"once.yml": ONCE_CASES})
    report = run_project(root)
    cases = by_name(report)
    assert report.problems == [] and not report.ok
    assert cases["ok"].ok and cases["ok"].reason == "" and cases["ok"].ms > 0
    assert not cases["wrong-output"].ok
    assert cases["wrong-output"].reason == (
        "output(s) boxes missing (got echo); output echo is 'hi', expected 'ho'; "
        "output echo 'hi' does not contain 'xyz'"
    )
    assert cases["error-expected"].ok and cases["error-expected"].code == 10042
    assert cases["error-unexpected"].reason == "expected code 0, got 10042 (the engine refused the input)"
    assert "does not contain 'too long'" in cases["wrong-message"].reason
    assert cases["bad-base64"].ok and cases["bad-base64"].code == 10161
    assert cases["hang"].ok and "did not return within 0.3 s" in cases["hang"].message
    assert [c.name for c in report.cases if c.ok] == ["ok", "error-expected", "bad-base64", "hang"]


SESSION_CASES = """
- name: sync
  request: {payload: {a: {audio: {utf8: ab}}}}
  frames:
    - {payload: {a: {audio: {utf8: cd}}}}
    - {header: {status: 2}, payload: {a: {status: 2, audio: {utf8: ef}}}}
  expect: {outputs: [part, all], payload: {part: {utf8: abcd}, all: {utf8: abcdef}}}
- name: pushed
  request: {parameter: {svc: {push: "true"}}, payload: {a: {audio: {utf8: ab}}}}
  frames:
    - {header: {status: 2}, payload: {a: {status: 2, audio: {utf8: cd}}}}
  expect: {payload: {part: {utf8: ab}, all: {utf8: abcd}}}
- name: streamed
  request: {parameter: {svc: {push: "true"}}, payload: {a: {encoding: raw}}}
  stream: {payload: a, file: data.bin, chunk: 3}
  expect: {payload: {all: {file: data.bin}, part: {utf8: "012345"}}}
- name: write-error
  request: {}
  frames:
    - {payload: {a: {audio: {utf8: fail}}}}
  expect: {code: 10042, message_contains: refused}
- name: never-ends
  request: {}
  frames:
    - {header: {status: 2}, payload: {a: {status: 2, audio: {utf8: never}}}}
  expect: {code: 10114, message_contains: read_timeout}
- name: frame-after-end
  request: {}
  frames:
    - {header: {status: 2}, payload: {a: {status: 2, audio: {utf8: x}}}}
    - {header: {status: 2}, payload: {a: {status: 2, audio: {utf8: y}}}}
  expect: {code: 10202}
- name: hangs
  request: {}
  frames:
    - {payload: {a: {audio: {utf8: hang}}}}
  expect: {code: 10114, message_contains: "a frame did not return"}
"""


@pytest.mark.timeout(15)
def test_session_cases_sync_async_stream_and_errors(tmp_path: Path) -> None:
    log = tmp_path / "destroyed.txt"
    toml = f'[loader]\nsession_results = "async"\nread_timeout = 0.5\n[wrapper]\ndestroy_log = "{log}"\n'
    root = make_project(tmp_path, "session_toy.py", toml, {"s.yml": SESSION_CASES})
    (root / "tests" / "data.bin").write_bytes(b"012345678")
    start = time.monotonic()
    report = run_project(root)
    assert time.monotonic() - start < 5
    failed = {c.name: c.reason for c in report.cases if not c.ok}
    assert failed == {} and report.ok
    assert len(report.cases) == 7
    assert [c.code for c in report.cases] == [0, 0, 0, 10042, 10114, 10202, 10114]
    # wrapperDestroy ran for every session, however it ended (errors, timeouts, a hung write).
    deadline = time.monotonic() + 10
    while len(log.read_text().split()) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(set(log.read_text().split())) == 7


def test_auto_mode_is_sync_when_nothing_was_pushed_before_the_last_frame(tmp_path: Path) -> None:
    case = "request: {}\nframes: [{header: {status: 2}, payload: {a: {status: 2, audio: {utf8: never}}}}]\n"
    root = make_project(tmp_path, "session_toy.py", '[loader]\nsession_results = "auto"\n', {"c.yml": case})
    (result,) = run_project(root).cases
    assert result.ok and result.code == 0


def test_sync_results_do_not_wait_for_a_callback(tmp_path: Path) -> None:
    # In sync mode the last frame ends the session even though the wrapper pushes its end later.
    case = "request: {parameter: {s: {push: 'true'}}}\nframes: [{header: {status: 2}}]\nexpect: {code: 0}\n"
    root = make_project(tmp_path, "session_toy.py", '[loader]\nsession_results = "sync"\n', {"c.yml": case})
    report = run_project(root)
    assert report.ok, report.to_json()


def test_contract_problems_stop_before_init(tmp_path: Path) -> None:
    root = make_project(tmp_path, "partial_session.py", cases={"c.yml": "name: x\n"})
    report = run_project(root)
    assert report.problems == ["session mode needs wrapperRead, wrapperDestroy (missing)"]
    assert report.cases == [] and not report.ok
    assert report.to_json() == {
        "ok": False,
        "problems": report.problems,
        "warnings": report.warnings,
        "cases": [],
    }


def test_modes_from_ase_toml_are_required(tmp_path: Path) -> None:
    root = make_project(tmp_path, "once_toy.py", '[service]\nmodes = ["once", "session"]\n')
    assert run_project(root).problems == [
        "session mode needs wrapperCreate, wrapperWrite, wrapperRead, wrapperDestroy (missing)"
    ]


def test_init_failure_and_fini_failure(tmp_path: Path) -> None:
    root = make_project(tmp_path, "once_toy.py", '[wrapper]\ninit = "fail"\n')
    assert run_project(root).problems == ["wrapperInit failed (10042): the engine refused the input"]
    shutil.rmtree(root)
    root = make_project(tmp_path, "session_toy.py", '[wrapper]\nfini = "fail"\n')
    report = run_project(root)
    assert report.problems == ["wrapperFini failed (10042): the engine refused the frame"]
    assert report.no_cases and not report.ok


def test_no_cases_is_ok(tmp_path: Path) -> None:
    report = run_project(make_project(tmp_path, "once_toy.py"))
    assert report.ok and report.no_cases and report.cases == []


def test_an_invalid_case_fails_without_running(tmp_path: Path) -> None:
    root = make_project(tmp_path, "once_toy.py", cases={"bad.yml": "expect: {code: x}\n"})
    (case,) = run_project(root).cases
    assert not case.ok and case.code == -1 and case.reason.startswith("bad.yml: expect: code")
