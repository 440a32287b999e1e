from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataItem(_message.Message):
    __slots__ = ("key", "data", "status", "type", "desc", "seq")
    class DescEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    key: str
    data: bytes
    status: int
    type: int
    desc: _containers.ScalarMap[str, str]
    seq: int
    def __init__(self, key: _Optional[str] = ..., data: _Optional[bytes] = ..., status: _Optional[int] = ..., type: _Optional[int] = ..., desc: _Optional[_Mapping[str, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class OutputSpec(_message.Message):
    __slots__ = ("key", "type", "desc")
    class DescEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    key: str
    type: int
    desc: _containers.ScalarMap[str, str]
    def __init__(self, key: _Optional[str] = ..., type: _Optional[int] = ..., desc: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RequestMeta(_message.Message):
    __slots__ = ("service_id", "version", "sid", "headers", "params", "expect", "psr_ids", "timeout_s")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    EXPECT_FIELD_NUMBER: _ClassVar[int]
    PSR_IDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    version: str
    sid: str
    headers: _containers.ScalarMap[str, str]
    params: _containers.ScalarMap[str, str]
    expect: _containers.RepeatedCompositeFieldContainer[OutputSpec]
    psr_ids: _containers.RepeatedScalarFieldContainer[str]
    timeout_s: float
    def __init__(self, service_id: _Optional[str] = ..., version: _Optional[str] = ..., sid: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., params: _Optional[_Mapping[str, str]] = ..., expect: _Optional[_Iterable[_Union[OutputSpec, _Mapping]]] = ..., psr_ids: _Optional[_Iterable[str]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class OnceRequest(_message.Message):
    __slots__ = ("meta", "data")
    META_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    meta: RequestMeta
    data: _containers.RepeatedCompositeFieldContainer[DataItem]
    def __init__(self, meta: _Optional[_Union[RequestMeta, _Mapping]] = ..., data: _Optional[_Iterable[_Union[DataItem, _Mapping]]] = ...) -> None: ...

class OnceResponse(_message.Message):
    __slots__ = ("code", "message", "sid", "data")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    sid: str
    data: _containers.RepeatedCompositeFieldContainer[DataItem]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., sid: _Optional[str] = ..., data: _Optional[_Iterable[_Union[DataItem, _Mapping]]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("meta", "status", "data")
    META_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    meta: RequestMeta
    status: int
    data: _containers.RepeatedCompositeFieldContainer[DataItem]
    def __init__(self, meta: _Optional[_Union[RequestMeta, _Mapping]] = ..., status: _Optional[int] = ..., data: _Optional[_Iterable[_Union[DataItem, _Mapping]]] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("code", "message", "sid", "status", "data")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    sid: str
    status: int
    data: _containers.RepeatedCompositeFieldContainer[DataItem]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., sid: _Optional[str] = ..., status: _Optional[int] = ..., data: _Optional[_Iterable[_Union[DataItem, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("index", "pid", "state", "lic_total", "lic_busy", "restarts")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIC_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIC_BUSY_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    pid: int
    state: str
    lic_total: int
    lic_busy: int
    restarts: int
    def __init__(self, index: _Optional[int] = ..., pid: _Optional[int] = ..., state: _Optional[str] = ..., lic_total: _Optional[int] = ..., lic_busy: _Optional[int] = ..., restarts: _Optional[int] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("service_id", "version", "healthy", "state", "lic_total", "lic_busy", "sessions", "workers", "modes")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIC_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LIC_BUSY_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MODES_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    version: str
    healthy: bool
    state: str
    lic_total: int
    lic_busy: int
    sessions: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    modes: str
    def __init__(self, service_id: _Optional[str] = ..., version: _Optional[str] = ..., healthy: _Optional[bool] = ..., state: _Optional[str] = ..., lic_total: _Optional[int] = ..., lic_busy: _Optional[int] = ..., sessions: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., modes: _Optional[str] = ...) -> None: ...
