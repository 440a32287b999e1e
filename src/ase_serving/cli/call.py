"""``asectl call``: call a service through the gateway (once, or a session fed from files), with the
Python client (:mod:`ase_serving.client`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ase_serving.cli.call_schema import ServiceDoc, describe, served
from ase_serving.cli.common import abort, print_json
from ase_serving.client import AseClientError, AsyncClient, Client, Result
from ase_serving.client.core import DATA_FIELDS, END, NO_ROUTE, ClientCore

_EPILOG = """\
Examples:

  asectl call echo --data text="hello ASE"

  asectl call ocr --data image1:image=@page.jpg --attr image1.encoding=jpg --param min_score=0.5 --json

  asectl call stream_echo --session --data text=@story.txt --chunk 1024

  asectl call tts --data text=hi --out ./out    # a service with binary outputs: ./out/NAME

--param NAME=VALUE: VALUE is JSON when it parses (50, true, "50", [1, 2]), else a string.
--data NAME[:TYPE]=@FILE (@- for stdin) or NAME[:TYPE]=TEXT: one input; TYPE is text, audio,
image, video or other (default: the data field the service's schema names for that input, else
text, sent with encoding utf8); --attr NAME.KEY=VALUE adds an attribute (encoding, sample_rate,
...). --session streams every input in frames of --chunk bytes (status 0, 1, ..., 2) and prints
each result as it comes; a service that takes sessions only needs it.

Text outputs are printed as text; binary ones as their size (with --out, written to
DIR/NAME). With --session each result's lines are marked partial (status 0, 1) or final
(status 2, the last). --json prints the response (one JSON line per result with --session), with a
"text_utf8" field beside each text output's base64. Exit 1 when the gateway answers an error
(10404: with the services it serves).

Gateway: --gateway, else $ASE_GATEWAY_URL, else the one `asectl setup --gateway` stored or the
local cluster's (`asectl init`).
Credentials: --app-id/--api-key/--api-secret, else $ASE_APP_ID/$ASE_API_KEY/$ASE_API_SECRET,
else $ASE_HOME/credentials.json (a secret given as a flag shows in `ps`: prefer the other two).
"""


def _pair(text: str, flag: str, form: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        abort(f"{flag} {text!r}: give {form}", 2)
    return name, value


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _read_data(specs: list[str]) -> list[tuple[str, str | None, bytes, str]]:
    """``--data`` -> (name, type or None when not given, bytes, the flag as given)."""
    out: list[tuple[str, str | None, bytes, str]] = []
    for spec in specs:
        target, value = _pair(spec, "--data", "NAME[:TYPE]=@FILE or NAME[:TYPE]=TEXT")
        name, _, kind = target.partition(":")
        if kind and kind not in DATA_FIELDS:
            abort(f"--data {spec!r}: type {kind!r} is not one of {', '.join(DATA_FIELDS)}", 2)
        if value == "@-":
            data = sys.stdin.buffer.read()
        elif value.startswith("@"):
            try:
                data = Path(value[1:]).read_bytes()
            except OSError as exc:
                abort(f"--data {spec!r}: cannot read {value[1:]} ({exc.strerror or exc})", 2)
        else:
            data = value.encode()
        out.append((name, kind or None, data, spec))
    return out


def _inputs(
    given: list[tuple[str, str | None, bytes, str]], attrs: list[str], doc: ServiceDoc | None = None
) -> dict[str, dict[str, Any]]:
    """``--data`` and ``--attr`` -> payload items ``{TYPE: bytes, **attributes}``. An input given
    without a type takes the data field the service's schema names for it (else text)."""
    items: dict[str, dict[str, Any]] = {}
    for name, kind, data, spec in given:
        if doc is not None and doc.closed and doc.inputs and name not in doc.inputs:
            abort(
                f"--data {spec!r}: {doc.service} has no input {name!r} (its inputs: {', '.join(doc.inputs)})",
                2,
            )
        kind = kind or (doc.inputs.get(name) if doc is not None else None) or "text"
        item: dict[str, Any] = {kind: data}
        if kind == "text":
            allowed = doc.encodings.get(name, []) if doc is not None else []
            item["encoding"] = "utf8" if not allowed or "utf8" in allowed else allowed[0]
        items[name] = item
    for spec in attrs:
        target, value = _pair(spec, "--attr", "NAME.KEY=VALUE")
        name, _, key = target.partition(".")
        if name not in items or not key:
            abort(f"--attr {spec!r}: NAME must be one of the --data inputs ({', '.join(items) or 'none'})", 2)
        items[name][key] = _value(value)
    return items


def _check_mode(doc: ServiceDoc, session: bool, service: str) -> None:
    """Refuse a call of a kind the service does not take, naming the flag to change."""
    if not doc.modes:
        return
    if session and "session" not in doc.modes:
        abort(f"{service} takes once requests only (HTTP POST), not sessions: leave out --session", 2)
    if not session and "once" not in doc.modes:
        abort(
            f"{service} takes sessions only (a WebSocket), not once requests: add --session "
            f"(`asectl call {service} --session --data ...` streams each input in frames)",
            2,
        )


def _not_served(exc: AseClientError, url: str, timeout: float) -> str:
    """A 10404 with the services the gateway does serve."""
    names = served(url, timeout)
    listed = ", ".join(names) if names else "none yet (push a service schema and start its loader)"
    return f"{exc}; services served at {url}: {listed}"


def gateway_url(flag: str | None) -> str:
    """--gateway, else $ASE_GATEWAY_URL, else the gateway the local cluster started."""
    url = flag or os.environ.get("ASE_GATEWAY_URL")
    if not url:
        from ase_serving.cluster_settings import ClusterSettings, SettingsError

        with contextlib.suppress(SettingsError):
            settings = ClusterSettings.load()
            url = settings.components.get("gateway") if settings is not None else None
    if not url:
        abort(
            "no gateway: pass --gateway http://HOST:PORT, set ASE_GATEWAY_URL, store one with "
            "`asectl setup --gateway URL`, or start a local cluster with `asectl init`"
        )
    return url


def credentials(
    app_id: str | None, api_key: str | None, api_secret: str | None
) -> tuple[str, str | None, str | None]:
    """Flags, else environment, else $ASE_HOME/credentials.json (its key and secret only with
    its own app id)."""
    from ase_serving.cluster_settings import CREDENTIALS_FILE, ase_home

    app_id = app_id or os.environ.get("ASE_APP_ID")
    api_key = api_key or os.environ.get("ASE_API_KEY")
    api_secret = api_secret or os.environ.get("ASE_API_SECRET")
    path = ase_home() / CREDENTIALS_FILE
    if path.exists():
        try:
            doc = orjson.loads(path.read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            abort(f"{path}: unreadable ({exc}); pass --app-id/--api-key/--api-secret instead")
        if not app_id or app_id == doc.get("app_id"):
            app_id = app_id or doc.get("app_id")
            api_key = api_key or doc.get("api_key")
            api_secret = api_secret or doc.get("api_secret")
    if not app_id:
        abort(
            "no app id: pass --app-id with --api-key and --api-secret (`asectl consumer add` makes "
            f"them), set ASE_APP_ID/ASE_API_KEY/ASE_API_SECRET, or run `asectl init`, which writes {path}"
        )
    return str(app_id), api_key or None, api_secret or None


def chunks(data: bytes, size: int, utf8: bool) -> Iterator[bytes]:
    """``data`` in pieces of at most ``size`` bytes; UTF-8 text is cut between characters."""
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        if utf8 and end < len(data):
            cut = end
            while cut > start and (data[cut] & 0xC0) == 0x80:  # a continuation byte
                cut -= 1
            end = cut if cut > start else end
        yield data[start:end]
        start = end


def _frames(items: dict[str, dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Per frame, the piece of each input it carries (inputs that ran out are left out)."""
    pieces: dict[str, list[bytes]] = {}
    for name, item in items.items():
        kind = next(f for f in DATA_FIELDS if f in item)
        pieces[name] = list(chunks(item[kind], size, kind == "text" and item.get("encoding") == "utf8"))
    n = max((len(p) for p in pieces.values()), default=0)
    frames = []
    for i in range(max(n, 1)):
        frame = {}
        for name, item in items.items():
            if i < len(pieces[name]):
                kind = next(f for f in DATA_FIELDS if f in item)
                frame[name] = {**item, kind: pieces[name][i]}
        frames.append(frame)
    return frames


def decoded(doc: dict[str, Any]) -> dict[str, Any]:
    """The answer with ``text_utf8`` beside each UTF-8 text output's base64, for people."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    for entry in (out.get("payload") or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("text"), str):
            with contextlib.suppress(UnicodeDecodeError, ValueError):
                entry["text_utf8"] = base64.b64decode(entry["text"]).decode("utf-8")
    return out


class Printer:
    """Shows results: text outputs as text, binary ones as their size (and into --out DIR)."""

    def __init__(self, as_json: bool, out: Path | None, session: bool) -> None:
        self.as_json, self.out, self.session = as_json, out, session
        self._written: set[Path] = set()

    def show(self, result: Result) -> None:
        if self.as_json:
            if self.session:
                typer.echo(orjson.dumps(decoded(result.raw)).decode())
            else:
                print_json(decoded(result.raw))
            return
        many = len(result.outputs) > 1
        # A session's results before the last (status 0, 1) are partial; the last (2) is final.
        mark = ("[final] " if result.status == END else "[partial] ") if self.session else ""
        if mark and not result.outputs:
            typer.echo(f"{mark}(no outputs)")
        for name, output in result.outputs.items():
            try:
                text = output.text if output.type == "text" else None
            except ValueError:
                text = None
            if text is not None:
                typer.echo(mark + (f"{name}: {text}" if many else text))
                continue
            what = ", ".join(x for x in (output.type, output.encoding) if x)
            line = f"{mark}{name}: {len(output.data)} bytes ({what})"
            if self.out is not None:
                path = self.out / name
                self.out.mkdir(parents=True, exist_ok=True)
                # A session's pieces of one output are appended, in order, to one file.
                with path.open("ab" if path in self._written else "wb") as fh:
                    fh.write(output.data)
                self._written.add(path)
                line += f" -> {path}"
            typer.echo(line)


async def _session(
    client: AsyncClient,
    service: str,
    params: dict[str, Any],
    header: dict[str, Any],
    frames: list[dict[str, Any]],
    printer: Printer,
) -> None:
    async with client.session(service, params, header) as session:

        async def feed() -> None:
            for i, frame in enumerate(frames):
                await session.send(frame, END if i == len(frames) - 1 else None)

        sender = asyncio.create_task(feed())
        try:
            async for result in session:
                printer.show(result)
        except BaseException:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            raise
        await sender


def register(app: typer.Typer) -> None:
    @app.command("call", epilog=_EPILOG)
    def call(
        service: Annotated[str, typer.Argument(help="A serviceId (echo) or a route (/v1/private/echo).")],
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
        ] = None,
        data: Annotated[
            list[str] | None, typer.Option("--data", "-d", help="NAME[:TYPE]=@FILE or NAME[:TYPE]=TEXT.")
        ] = None,
        attr: Annotated[list[str] | None, typer.Option("--attr", help="NAME.KEY=VALUE of an input.")] = None,
        header: Annotated[
            list[str] | None, typer.Option("--header", help="KEY=VALUE in header (uid).")
        ] = None,
        session: Annotated[
            bool, typer.Option("--session", help="A WebSocket session, fed in chunks.")
        ] = False,
        chunk: Annotated[int, typer.Option("--chunk", min=1, help="Bytes per frame with --session.")] = 4096,
        as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
        out: Annotated[Path | None, typer.Option("--out", help="Write binary outputs to DIR/NAME.")] = None,
        gateway: Annotated[str | None, typer.Option("--gateway", help="The gateway's URL.")] = None,
        app_id: Annotated[str | None, typer.Option("--app-id", help="The calling app's id.")] = None,
        api_key: Annotated[str | None, typer.Option("--api-key", help="Its API key.")] = None,
        api_secret: Annotated[str | None, typer.Option("--api-secret", help="Its secret (signs).")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for an answer.")] = 60.0,
    ) -> None:
        """Call a service through the gateway and print its outputs."""
        params = dict(_pair(p, "--param", "NAME=VALUE") for p in param or [])
        fields = {k: _value(v) for k, v in params.items()}
        head = {k: v for k, v in (_pair(h, "--header", "KEY=VALUE") for h in header or [])}
        given = _read_data(data or [])
        url = gateway_url(gateway)
        creds = credentials(app_id, api_key, api_secret)
        printer = Printer(as_json, out, session)
        try:
            ClientCore(url, creds[0])  # the URL's form is checked before anything is asked
            doc = describe(url, service, timeout)
            _check_mode(doc, session, service)
            items = _inputs(given, attr or [], doc)
            if session:
                frames = _frames(items, chunk)

                async def run() -> None:
                    async with AsyncClient(url, *creds, timeout=timeout) as client:
                        await _session(client, service, fields, head, frames, printer)

                asyncio.run(run())
            else:
                with Client(url, *creds, timeout=timeout) as client:
                    printer.show(client.once(service, fields, items, head))
        except AseClientError as exc:
            if as_json and exc.code > 0:
                print_json({"header": {"code": exc.code, "message": exc.message, "sid": exc.sid}})
            abort(_not_served(exc, url, timeout) if exc.code == NO_ROUTE else str(exc))
        except ValueError as exc:
            abort(f"{url}: {exc}", 2)
