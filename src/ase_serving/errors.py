"""The error codes of the public protocol (PROTOCOL.md) and the one exception tree that carries them.

::

    AseError (code, message)
    ├── BadRequest        10160 bad JSON · 10161 bad base64 · 10163 schema mismatch · 10202 frame after end
    ├── NoLicence         10110 every licence slot busy (overload)
    ├── Timeout           10114 engine too slow, or a session idle / too long
    ├── NoLoader          11503 no loader reachable for the service
    ├── NoRoute           10404 no service at this route
    ├── TooLarge          10413 request body or session frame over the service's limit
    └── WrapperFailure    109xx, or any non-zero code a wrapper returned

    10500 is no exception of this tree: the gateway's answer to one that is not an AseError (a bug).

An error may carry its own HTTP status (``http``) where one code has two (10313: 400 when
``app_id`` is missing, 403 when it is not the consumer's).

Each transport maps these to its own form (HTTP status, WebSocket frame, gRPC response) in one place.
"""

from __future__ import annotations

SUCCESS = 0
BAD_JSON = 10160
BAD_BASE64 = 10161
SCHEMA_MISMATCH = 10163
APP_ID_MISMATCH = 10313
AUTH_FAILED = 10401
FORBIDDEN = 10403
NO_ROUTE = 10404
TOO_LARGE = 10413
NO_LICENCE = 10110
TIMEOUT = 10114
NO_LOADER = 11503
FRAME_AFTER_END = 10202
WRAPPER_INIT = 10901
WRAPPER_FINI = 10902
WRAPPER_CREATE = 10905
WRAPPER_DESTROY = 10906
WRAPPER_WRITE = 10907
WRAPPER_READ = 10908
WRAPPER_EXEC = 10909
WRAPPER_EXCEPTION = 10910
WORKER_DIED = 10911
UNSUPPORTED_MODE = 10912
#: The gateway failed on a request (a bug, never the client's input): logged with its traceback.
SERVER_ERROR = 10500

HTTP_STATUS: dict[int, int] = {
    SUCCESS: 200,
    BAD_JSON: 400,
    BAD_BASE64: 400,
    SCHEMA_MISMATCH: 400,
    APP_ID_MISMATCH: 403,
    AUTH_FAILED: 401,
    FORBIDDEN: 403,
    NO_ROUTE: 404,
    TOO_LARGE: 413,
    NO_LICENCE: 429,
    NO_LOADER: 503,
    TIMEOUT: 504,
    FRAME_AFTER_END: 400,
    SERVER_ERROR: 500,
}


def http_status(code: int) -> int:
    """The HTTP status for a protocol code; wrapper codes (109xx and others) are 500."""
    return HTTP_STATUS.get(code, 500)


class AseError(Exception):
    """An error with a protocol code and a message a user can act on."""

    code: int = 500

    def __init__(self, message: str, code: int | None = None, http: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.http = http if http is not None else http_status(self.code)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BadRequest(AseError):
    code = SCHEMA_MISMATCH


class NoLicence(AseError):
    code = NO_LICENCE


class Timeout(AseError):
    code = TIMEOUT


class NoLoader(AseError):
    code = NO_LOADER


class NoRoute(AseError):
    code = NO_ROUTE


class TooLarge(AseError):
    code = TOO_LARGE


class WrapperFailure(AseError):
    code = WRAPPER_EXCEPTION


def frame_after_end() -> BadRequest:
    """10202: a session frame that arrived after the session ended."""
    return BadRequest("frame sent after the session ended", FRAME_AFTER_END)


def describe(exc: BaseException) -> str:
    """An exception as the plain text that crosses a process boundary: ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


def error_for(code: int, message: str) -> AseError:
    """The exception class that carries ``code``."""
    cls: type[AseError]
    if code == NO_LICENCE:
        cls = NoLicence
    elif code == TIMEOUT:
        cls = Timeout
    elif code == NO_LOADER:
        cls = NoLoader
    elif code in (BAD_JSON, BAD_BASE64, SCHEMA_MISMATCH, FRAME_AFTER_END):
        cls = BadRequest
    else:
        cls = WrapperFailure
    return cls(message, code)
