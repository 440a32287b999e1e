"""The API defined in code, next to the engine (the seed's second way to make a service schema).

.. code-block:: python

    from ase_serving import api as base

    class Api(base.BaseASEApi):
        interface = ["once"]                     # once, session, or both (the default)

        def request(self):
            speed = base.Arg("speed", int, "speaking speed", min=50, max=200000, required=True)
            vcn = base.Arg("vcn", str, "voice name", required=True, enum=["xiaoyan", "aisjiuxu"])
            text = base.Data("text", "text", "what to say", encoding="utf8", required=True)

        def response(self):
            audio = base.Data("audio", "audio", "the speech", encoding="raw", sample_rate=16000)

``asectl api gen wrapper.py`` finds the ``BaseASEApi`` subclass and writes the service schema.
The ``Arg`` and ``Data`` objects are plain local variables, as in the seed: each registers itself
with the ``request()``/``response()`` call that is being collected. An ``Arg`` in ``response()``
is an output carrying that value as text. The service name and version come from the project,
as for ``asectl loader run`` (ase.toml, else the folder's name and 1.0.0).
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

__all__ = ["Arg", "BaseASEApi", "Data"]

_UNSET: Any = object()
_collector: contextvars.ContextVar[list[Arg | Data] | None] = contextvars.ContextVar(
    "ase_api_collector", default=None
)


def _caller(depth: int = 2) -> tuple[str, int]:
    frame = sys._getframe(depth)
    return frame.f_code.co_filename, frame.f_lineno


def _register(decl: Arg | Data) -> None:
    found = _collector.get()
    if found is not None:
        found.append(decl)


def _claim(decls: Sequence[Arg]) -> None:
    """Args nested in another (an object's properties) are not top-level declarations."""
    found = _collector.get()
    if found is not None:
        ids = {id(d) for d in decls}
        found[:] = [d for d in found if id(d) not in ids]


class Arg:
    """A parameter: ``Arg(name, type, description, max=None, min=None, required=False)`` as in the seed.

    ``type``: ``int``, ``float``, ``str``, ``bool``, ``dict``, ``list`` or a JSON Schema type name.
    ``min``/``max`` bound numbers, or lengths of strings and lists. An object's fields are
    ``properties=[Arg(...), ...]``, a list's element ``items=Arg(...)``.
    """

    def __init__(
        self,
        name: str,
        type: Any,
        description: str = "",
        max: float | None = None,
        min: float | None = None,
        required: bool = False,
        *,
        default: Any = _UNSET,
        enum: Sequence[Any] | None = None,
        format: str | None = None,
        pattern: str | None = None,
        properties: Sequence[Arg] | None = None,
        items: Arg | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.max = max
        self.min = min
        self.required = required
        self.default = default
        self.enum = list(enum) if enum is not None else None
        self.format = format
        self.pattern = pattern
        self.properties = list(properties or [])
        self.items = items
        self.file, self.line = _caller()
        _claim([*self.properties, *([items] if items is not None else [])])
        _register(self)

    def __repr__(self) -> str:
        return f"Arg({self.name!r}, {getattr(self.type, '__name__', self.type)!r})"


class Data:
    """A data input (in ``request()``) or output (in ``response()``): a payload entry.

    ``type`` is text, audio, image, video or other; ``encoding``/``compress``/``format`` are a
    value or a list of the accepted ones; other keywords (``sample_rate``, ``channels``,
    ``width``, ...) describe the data.
    """

    def __init__(
        self,
        name: str,
        type: str,
        description: str = "",
        *,
        encoding: str | Sequence[str] | None = None,
        compress: str | Sequence[str] | None = None,
        format: str | Sequence[str] | None = None,
        required: bool = False,
        **attrs: Any,
    ) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.encoding = encoding
        self.compress = compress
        self.format = format
        self.required = required
        self.attrs = attrs
        self.file, self.line = _caller()
        _register(self)

    def __repr__(self) -> str:
        return f"Data({self.name!r}, {self.type!r})"


class BaseASEApi:
    """Subclass it in ``wrapper.py``; declare ``Arg``/``Data`` locals in ``request()``/``response()``.

    Class attributes (all optional): ``interface`` (``"once"``, ``"session"`` or both),
    ``route`` (a path or a list), ``read_timeout``/``session_timeout``/``queue_timeout`` (seconds),
    ``max_body``/``max_frame`` (bytes), ``client_errors`` (the wrapper's codes that mean a bad
    request: HTTP 400), ``description``, ``name`` (the config item's name, default the service
    id), ``extra_params`` (True lets requests carry parameters that are not declared).
    """

    interface: ClassVar[str | Sequence[str]] = ("once", "session")
    route: ClassVar[str | Sequence[str] | None] = None
    read_timeout: ClassVar[float | None] = None
    session_timeout: ClassVar[float | None] = None
    queue_timeout: ClassVar[float | None] = None
    max_body: ClassVar[int | None] = None
    max_frame: ClassVar[int | None] = None
    client_errors: ClassVar[Sequence[int]] = ()
    description: ClassVar[str] = ""
    name: ClassVar[str] = ""
    extra_params: ClassVar[bool] = False

    def request(self) -> None:
        """Declare the parameters (``Arg``) and data inputs (``Data``) as local variables."""

    def response(self) -> None:
        """Declare the data outputs (``Data``; an ``Arg`` is an output holding that value as text)."""


@contextmanager
def collecting() -> Iterator[list[Arg | Data]]:
    """Every ``Arg``/``Data`` created inside, in order of creation (nested ones excluded)."""
    found: list[Arg | Data] = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)
