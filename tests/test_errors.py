"""The exception tree and the protocol codes of :mod:`ase_serving.errors`, against each other,
the WebSocket close codes and the table of codes in docs/protocol.md."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import pytest

import ase_serving
from ase_serving import errors
from ase_serving.gateway.answers import close_code

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PROTOCOL = ROOT / "docs" / "protocol.md"

#: Every protocol code errors.py names: its upper-case int constants.
CODES = {name: value for name, value in vars(errors).items() if name.isupper() and type(value) is int}


def _table(path: Path, head: str) -> list[list[str]]:
    """The cells of the rows of the Markdown table whose header line is ``head``."""
    lines = path.read_text().splitlines()
    assert head in lines, f"{path.name} has no table headed {head!r}"
    rows = []
    for line in lines[lines.index(head) + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def protocol_rows() -> dict[int, tuple[str, str, str]]:
    """docs/protocol.md's table of codes: each code with its (name, HTTP, WebSocket close) cells."""
    rows: dict[int, tuple[str, str, str]] = {}
    for code, name, _meaning, http, close in _table(
        PROTOCOL, "| code | name | meaning | HTTP | WebSocket close |"
    ):
        if code.isdigit():
            assert int(code) not in rows, f"docs/protocol.md has two rows for {code}"
            rows[int(code)] = (name, http, close)
    return rows


def readme_codes() -> dict[int, str]:
    """The README's table of codes (``| code | meaning | HTTP |``), if it still has one: each code
    with its HTTP cell. The ``109xx`` row names its codes in its meaning."""
    if "| code | meaning | HTTP |" not in README.read_text().splitlines():
        return {}
    rows: dict[int, str] = {}
    for code, meaning, status in _table(README, "| code | meaning | HTTP |"):
        if code.isdigit():
            rows[int(code)] = status
        elif code == "109xx":
            rows.update((int(c), status) for c in re.findall(r"\b109\d\d\b", meaning))
    return rows


def test_the_codes_are_found() -> None:
    assert {"SUCCESS", "AUTH_FAILED", "WRAPPER_INIT", "UNSUPPORTED_MODE", "SERVER_ERROR"} <= set(CODES)
    assert len(set(CODES.values())) == len(CODES), "two names for one code"


@pytest.mark.parametrize("name", sorted(CODES))
def test_every_code_has_an_http_status(name: str) -> None:
    code = CODES[name]
    assert code in errors.HTTP_STATUS, f"{name} ({code}) has no HTTP status in errors.HTTP_STATUS"
    assert 200 <= errors.http_status(code) <= 599


@pytest.mark.parametrize("name", sorted(set(CODES) - {"SUCCESS"}))
def test_every_code_has_a_websocket_close_code(name: str) -> None:
    exc = errors.error_for(CODES[name], "x")
    assert exc.code == CODES[name]
    expected = 1013 if exc.code == errors.NO_LICENCE else 1011 if exc.http >= 500 else 1008
    assert close_code(exc) == expected


def _statuses(code: int) -> set[int]:
    """Every HTTP status an error with ``code`` can have: its code's, and each class's own."""
    _import_the_package()  # every class of the tree defined
    classes = {errors.AseError} | _subclasses(errors.AseError)
    return {errors.http_status(code)} | {
        cls.status for cls in classes if cls.status is not None and cls.code == code
    }


@pytest.mark.parametrize("name", sorted(CODES))
def test_every_code_has_its_row_in_the_protocol_document(name: str) -> None:
    """docs/protocol.md names each code of errors.py with its constant, every HTTP status it can
    be answered with, and the close code of a session it ends."""
    code = CODES[name]
    rows = protocol_rows()
    assert code in rows, f"docs/protocol.md's table of codes has no row for {code} ({name})"
    named, http, close = rows[code]
    assert named == name, f"docs/protocol.md names {code} {named}, errors.py {name}"
    shown = {int(s) for s in re.findall(r"\b[1-5]\d\d\b", http)}
    assert shown == _statuses(code), f"docs/protocol.md gives {code} HTTP {http}"
    expected = 1000 if code == errors.SUCCESS else close_code(errors.error_for(code, "x"))
    assert re.findall(r"\b1\d{3}\b", close)[:1] == [str(expected)], f"{code} closes with {close}"


def test_the_protocol_document_names_no_code_that_errors_py_lacks() -> None:
    assert set(protocol_rows()) <= set(CODES.values())


def test_the_readme_agrees_with_errors_py_where_it_lists_codes() -> None:
    """The README's short table, while it has one: no code errors.py lacks, each with its status."""
    rows = readme_codes()
    assert set(rows) <= set(CODES.values())
    for code, status in rows.items():
        assert str(errors.http_status(code)) in status, f"README.md gives {code} HTTP {status}"


def test_the_exceptions_of_the_tree() -> None:
    cases: list[tuple[errors.AseError, int, int, int]] = [
        (errors.AuthFailed("x"), errors.AUTH_FAILED, 401, 1008),
        (errors.Forbidden("x"), errors.FORBIDDEN, 403, 1008),
        (errors.OverLimit("x", retry_after=3), errors.NO_LICENCE, 429, 1013),
        (errors.NoLicence("x"), errors.NO_LICENCE, 429, 1013),
        (errors.Timeout("x"), errors.TIMEOUT, 504, 1011),
        (errors.NoLoader("x"), errors.NO_LOADER, 503, 1011),
        (errors.NoRoute("x"), errors.NO_ROUTE, 404, 1008),
        (errors.TooLarge("x"), errors.TOO_LARGE, 413, 1008),
        (errors.BadRequest("x"), errors.SCHEMA_MISMATCH, 400, 1008),
        (errors.WrapperFailure("x"), errors.WRAPPER_EXCEPTION, 500, 1011),
        (errors.AseError("x"), errors.SERVER_ERROR, 500, 1011),
    ]
    for exc, code, http, close in cases:
        assert (exc.code, exc.http, close_code(exc)) == (code, http, close), type(exc).__name__


def test_the_docstring_draws_every_exception() -> None:
    doc = errors.__doc__ or ""
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)]
    for cls in classes:
        assert re.search(rf"── (\S+\.)?{cls.__name__}\b", doc), cls


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def _import_the_package() -> list[ModuleType]:
    """Every module of ase_serving (not the ``__main__`` scripts), so every class of the tree exists."""
    return [
        importlib.import_module(m.name)
        for m in pkgutil.walk_packages(ase_serving.__path__, "ase_serving.")
        if not m.name.endswith("__main__")
    ]


def drawn_tree() -> dict[str, tuple[str, str, str]]:
    """The docstring's tree: each class drawn, by name, with (its module path as drawn or "", the
    class it is drawn under, its line)."""
    drawn: dict[str, tuple[str, str, str]] = {}
    stack: list[tuple[int, str]] = []  # (column of "── ", name) of the lines above, outermost first
    for line in (errors.__doc__ or "").splitlines():
        col = line.find("── ")
        if col < 0:
            continue
        token = line[col + 3 :].split()[0]
        path, _, name = token.rpartition(".")
        while stack and stack[-1][0] >= col:
            stack.pop()
        assert name not in drawn, f"{name} drawn twice"
        drawn[name] = (path, stack[-1][1] if stack else "Exception", line)
        stack.append((col, name))
    return drawn


def test_the_tree_draws_every_class_of_the_package_under_its_base() -> None:
    """Every exception of ase_serving under one of the two roots is drawn, under its own base, with a
    module path that finds it (or that of the nearest class drawn above it with one), its other
    base (ValueError) named on its line; and the tree draws no class that is not there."""
    modules = {m.__name__: m for m in _import_the_package()}
    drawn = drawn_tree()
    tree = {errors.AseError, errors.UserError} | {
        cls
        for cls in _subclasses(errors.AseError) | _subclasses(errors.UserError)
        if cls.__module__.startswith("ase_serving.")
    }
    names = {cls.__name__ for cls in tree}
    assert not names - set(drawn), f"not drawn in errors.py's tree: {sorted(names - set(drawn))}"
    assert not set(drawn) - names, f"drawn, but no such class: {sorted(set(drawn) - names)}"
    for cls in tree:
        path, parent, line = drawn[cls.__name__]
        bases = {b.__name__ for b in cls.__bases__}
        assert parent in bases, f"{cls.__name__} is drawn under {parent}, its bases are {sorted(bases)}"
        for other in bases - {parent}:
            assert f"({other})" in line, f"{cls.__name__}'s line does not name its base {other}"
        at, above = path, parent
        while not at and above in drawn:  # no path: the module of the nearest class above with one
            at, above = drawn[above][0], drawn[above][1]
        module = modules[f"ase_serving.{at}"] if at else errors
        assert getattr(module, cls.__name__, None) is cls, f"{cls.__name__} is not ase_serving.{at}'s"


#: Classes of the package that share a name, with why they may.
SHARED_NAMES = {
    # Both public: a plugin's result (``ase_serving.Result``) and the SDK's (``ase_serving.client``).
    "Result",
}


def test_no_two_classes_of_the_package_share_a_name() -> None:
    """One name, one class (issue 17: two AuthFailed, two BadRequest, two Pool, two Scope were one
    too many); private classes (``_Conn``) aside."""
    where: dict[str, list[str]] = {}
    for path in sorted(Path(errors.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(str(path.relative_to(README.parent)))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert set(shared) == SHARED_NAMES, shared


def test_the_roots_are_apart() -> None:
    """A start-up failure is no protocol error, and no protocol error is the user's to put right."""
    import ase_serving.cluster.images
    import ase_serving.cluster.k8s
    import ase_serving.cluster.local
    import ase_serving.gateway.server
    import ase_serving.lb.service
    import ase_serving.loader.lifecycle
    import ase_serving.loader.project
    import ase_serving.schema.spec  # noqa: F401  (each defines a class of the tree)

    assert not issubclass(errors.StartupError, errors.AseError)
    assert not issubclass(errors.AseError, errors.UserError)
    names = {cls.__name__ for cls in _subclasses(errors.StartupError)}
    assert {"BindError", "StartError", "ServeError", "GatewayError", "LbError"} <= names
    users = {cls.__name__ for cls in _subclasses(errors.UserError)}
    assert {"StoreError", "SettingsError", "ProjectError", "ApiDefinitionError", "DockerError"} <= users
    assert {"LocalError", "K8sError", "StoreAuthFailed", "InvalidName"} <= users
    for cls in _subclasses(errors.AseError):
        assert cls.code in errors.HTTP_STATUS, cls


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (errors.MethodNotAllowed, errors.SCHEMA_MISMATCH, 405),
        (errors.NotJson, errors.BAD_JSON, 415),
        (errors.AppIdMissing, errors.APP_ID_MISMATCH, 400),
        (errors.AppIdMismatch, errors.APP_ID_MISMATCH, 403),
        (errors.AuthFailed, errors.AUTH_FAILED, 401),
        (errors.NoLoader, errors.NO_LOADER, 503),
        (errors.SlowClient, errors.TIMEOUT, 408),
    ],
)
def test_an_errors_http_status_is_its_classs(cls: type[errors.AseError], code: int, status: int) -> None:
    exc = cls("why")
    assert (exc.code, exc.http) == (code, status)


def test_errors_are_rendered_in_one_module_of_the_gateway() -> None:
    """Issue 17, point 3: only gateway/answers.py builds an error body; no raise site picks an
    HTTP status (``http=``) but the relay of a wrapper's code (its service's client_errors)."""
    gateway = Path(errors.__file__).parent / "gateway"
    for path in sorted(gateway.glob("*.py")):
        text = path.read_text()
        if path.name != "answers.py":
            assert "error_body(" not in text.replace("import error_body", ""), path.name
        assert text.count("http=") == (1 if path.name == "session.py" else 0), path.name
