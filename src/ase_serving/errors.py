"""The error codes of the public protocol (docs/protocol.md) and the one exception tree of the project.

::

    Exception
    ├── AseError (code, message, http)   a protocol error: a request or session failed with a code
    │   ├── BadRequest        10160 bad JSON · 10161 bad base64 · 10163 schema mismatch · 10202 after end
    │   │   ├── protocol.public.TooDeep   a JSON body nested too deep to take
    │   │   ├── MethodNotAllowed  HTTP 405: a route asked the wrong way (GET, a WebSocket for once only)
    │   │   └── NotJson           10160 with HTTP 415: a body sent as something else than JSON
    │   ├── AppIdMissing      10313 with HTTP 400: ``header.app_id`` missing
    │   ├── AppIdMismatch     10313 with HTTP 403: not the app id of the credentials used
    │   ├── AuthFailed        10401 no credentials, an unknown key, a signature that does not match
    │   ├── Forbidden         10403 the consumer may not call this service
    │   ├── OverLimit         10110 the consumer is over its rps / sessions limit (``retry_after``)
    │   ├── NoLicence         10110 every licence slot busy (overload)
    │   ├── Timeout           10114 engine too slow, or a session idle / too long
    │   │   └── SlowClient    10114 with HTTP 408: a request's headers or body came too slowly
    │   ├── NoLoader          11503 no loader reachable for the service
    │   ├── NoRoute           10404 no service at this route
    │   ├── TooLarge          10413 request body or session frame over the service's limit
    │   └── WrapperFailure    109xx, or any non-zero code a wrapper returned
    └── UserError (exit_code)            something a user can put right; asectl prints it, exits 1
        ├── StartupError (message)       a process could not start; no protocol code
        │   ├── rpc.BindError                 a gRPC server's port cannot be listened on
        │   ├── loader.pool.StartError        a worker could not load or init the wrapper
        │   ├── loader.lifecycle.ServeError   the loader cannot start (port taken, TLS, secret)
        │   ├── gateway.server.GatewayError   the gateway cannot start (port taken, bad settings)
        │   ├── lb.service.LbError            the LB service cannot start (port, config centre address)
        │   └── designer.run.PageError        the API design page cannot listen (port taken, host unknown)
        ├── store.StoreError              anything that went wrong talking to the config centre
        │   ├── StoreUnavailable              it cannot be reached: retry later
        │   │   └── cluster.access.ClusterUnreachable   asectl cannot reach its config centre
        │   ├── StoreAuthFailed               wrong or missing account/password
        │   │   └── cluster.access.AccessDenied   asectl's account refused, said with what to run
        │   ├── NotFound                      no such config item / revision / lease
        │   ├── ReadOnly                      the backend takes no writes (configmap)
        │   ├── Compacted                     a watch asked for history no longer kept
        │   ├── LeaseLost                     a registration's lease is gone: register again
        │   ├── InvalidName (ValueError)      a name that cannot be a key part
        │   ├── store.embedded.db.InvalidStoreRequest (ValueError)   a request the embedded store refuses
        │   ├── cluster.access.NotSetUp       no cluster set up under $ASE_HOME
        │   ├── cluster.items.Ambiguous       a bare item name that several services' items have
        │   └── cluster.items.RouteTaken      a schema for a route another schema of the scope serves
        ├── cluster_settings.SettingsError   cluster.json unreadable or incomplete
        ├── loader.project.ProjectError   a project folder or its ase.toml is unusable
        ├── schema.ApiDefinitionError (ValueError)   an API definition refused, every problem listed
        ├── schema.ServiceSchemaError (ValueError)   a service schema JSON refused, every problem listed
        ├── wrapper.PluginError           wrapper.py cannot be used (import, contract, Wrapper()), all listed
        ├── loader.testcases.CaseError (ValueError)   a test case the runner cannot run (a failed case)
        ├── cluster.images.DockerError    docker cannot build, run or test an image
        ├── cluster.local.LocalError      a local cluster's component cannot start or stop
        └── cluster.k8s.K8sError          helm failed (its own ``exit_code``: 2 for a bad option)

    An AseError raised with no code is 10500: the gateway's answer to an exception that is not an
    AseError (a bug).

An error's HTTP status is its class's (``status``), else its code's (:data:`HTTP_STATUS`); the one
status a raise site passes (``http``) is a wrapper code's, which the service's ``client_errors``
make 400. Each transport renders an error in one place (:mod:`ase_serving.gateway.answers`: the
HTTP answer, the WebSocket error frame and close code; the loader's gRPC answer).

A :class:`UserError` never reaches a client: the command line tool turns it into ``error:
<message>`` on stderr and exit status ``exit_code`` in one place (:mod:`ase_serving.cli.main`),
and the servers' ``__main__`` modules print one (mostly a :class:`StartupError`) the same way.
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
    WRAPPER_INIT: 500,
    WRAPPER_FINI: 500,
    WRAPPER_CREATE: 500,
    WRAPPER_DESTROY: 500,
    WRAPPER_WRITE: 500,
    WRAPPER_READ: 500,
    WRAPPER_EXEC: 500,
    WRAPPER_EXCEPTION: 500,
    WORKER_DIED: 500,
    UNSUPPORTED_MODE: 500,
    SERVER_ERROR: 500,
}


def http_status(code: int) -> int:
    """The HTTP status for a protocol code; wrapper codes (109xx and any other) are 500."""
    return HTTP_STATUS.get(code, 500)


class AseError(Exception):
    """An error with a protocol code and a message a user can act on."""

    code: int = SERVER_ERROR
    #: The HTTP status of every error of this class (None: the code's, :data:`HTTP_STATUS`).
    status: int | None = None

    def __init__(self, message: str, code: int | None = None, http: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http is None:
            http = self.status if self.status is not None else http_status(self.code)
        self.http = http

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BadRequest(AseError):
    code = SCHEMA_MISMATCH


class MethodNotAllowed(BadRequest):
    """A service route asked the wrong way (GET for a once route, a WebSocket for a once-only
    service): HTTP 405, with ``allow`` the method the route takes (its ``Allow`` header)."""

    status = 405

    def __init__(self, message: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.allow = allow


class NotJson(BadRequest):
    """A body sent with a Content-Type that is not JSON: 10160 with HTTP 415."""

    code = BAD_JSON
    status = 415


class AppIdMissing(AseError):
    """``header.app_id`` is missing: 10313 with HTTP 400 (the caller's omission)."""

    code = APP_ID_MISMATCH
    status = 400


class AppIdMismatch(AseError):
    """``header.app_id`` is not the app id of the credentials used: 10313 with HTTP 403."""

    code = APP_ID_MISMATCH
    status = 403


class AuthFailed(AseError):
    def __init__(self, message: str) -> None:
        super().__init__(message, AUTH_FAILED)


class Forbidden(AseError):
    def __init__(self, message: str) -> None:
        super().__init__(message, FORBIDDEN)


class OverLimit(AseError):
    """A consumer over its own limit: 10110 / HTTP 429 with ``Retry-After: retry_after``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, NO_LICENCE)
        self.retry_after = retry_after


class NoLicence(AseError):
    code = NO_LICENCE


class Timeout(AseError):
    code = TIMEOUT


class SlowClient(Timeout):
    """10114 with HTTP 408: a request's headers or body did not arrive in time."""

    status = 408


class NoLoader(AseError):
    code = NO_LOADER


class NoRoute(AseError):
    code = NO_ROUTE


class TooLarge(AseError):
    code = TOO_LARGE


class WrapperFailure(AseError):
    code = WRAPPER_EXCEPTION


class UserError(Exception):
    """Something a user can put right (a file, a setting, a port); the message says what and how.

    ``asectl`` prints it as ``error: <message>`` on stderr and exits with ``exit_code``."""

    exit_code: int = 1


class StartupError(UserError):
    """A process (gateway, loader, LB service) could not start; the message says why. No protocol code:
    no request was made."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
