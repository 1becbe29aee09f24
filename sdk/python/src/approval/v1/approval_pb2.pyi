import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApprovalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_STATUS_UNSPECIFIED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_PENDING: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_APPROVED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_REJECTED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_EXPIRED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_CANCELLED: _ClassVar[ApprovalStatus]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_APPROVE: _ClassVar[Decision]
    DECISION_REJECT: _ClassVar[Decision]

class OnTimeout(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_TIMEOUT_UNSPECIFIED: _ClassVar[OnTimeout]
    ON_TIMEOUT_REJECT: _ClassVar[OnTimeout]
    ON_TIMEOUT_APPROVE: _ClassVar[OnTimeout]

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_ALREADY_FINAL: _ClassVar[ErrorReason]
    ERROR_REASON_CONTEXT_DIGEST_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_IDEMPOTENCY_KEY_REUSED: _ClassVar[ErrorReason]
    ERROR_REASON_STORE_REFUSES_WRITES: _ClassVar[ErrorReason]
    ERROR_REASON_OUTCOME_UNKNOWN: _ClassVar[ErrorReason]
    ERROR_REASON_ALREADY_VOTED: _ClassVar[ErrorReason]
    ERROR_REASON_RATE_LIMITED: _ClassVar[ErrorReason]
    ERROR_REASON_TOO_MANY_INVALID_CREDENTIALS: _ClassVar[ErrorReason]
    ERROR_REASON_OPEN_APPROVALS_QUOTA: _ClassVar[ErrorReason]
    ERROR_REASON_WATCHER_CAP: _ClassVar[ErrorReason]

class ErrorMetadataKey(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_METADATA_KEY_UNSPECIFIED: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_ID: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_STATUS: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_DECIDED_BY: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_REASON: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_DECIDED_AT: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_CONTEXT_DIGEST: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_EXPECTED_CONTEXT_DIGEST: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_CAUSE: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_VOTER: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_DECISION: _ClassVar[ErrorMetadataKey]
    ERROR_METADATA_KEY_SCOPE: _ClassVar[ErrorMetadataKey]
APPROVAL_STATUS_UNSPECIFIED: ApprovalStatus
APPROVAL_STATUS_PENDING: ApprovalStatus
APPROVAL_STATUS_APPROVED: ApprovalStatus
APPROVAL_STATUS_REJECTED: ApprovalStatus
APPROVAL_STATUS_EXPIRED: ApprovalStatus
APPROVAL_STATUS_CANCELLED: ApprovalStatus
DECISION_UNSPECIFIED: Decision
DECISION_APPROVE: Decision
DECISION_REJECT: Decision
ON_TIMEOUT_UNSPECIFIED: OnTimeout
ON_TIMEOUT_REJECT: OnTimeout
ON_TIMEOUT_APPROVE: OnTimeout
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_ALREADY_FINAL: ErrorReason
ERROR_REASON_CONTEXT_DIGEST_MISMATCH: ErrorReason
ERROR_REASON_IDEMPOTENCY_KEY_REUSED: ErrorReason
ERROR_REASON_STORE_REFUSES_WRITES: ErrorReason
ERROR_REASON_OUTCOME_UNKNOWN: ErrorReason
ERROR_REASON_ALREADY_VOTED: ErrorReason
ERROR_REASON_RATE_LIMITED: ErrorReason
ERROR_REASON_TOO_MANY_INVALID_CREDENTIALS: ErrorReason
ERROR_REASON_OPEN_APPROVALS_QUOTA: ErrorReason
ERROR_REASON_WATCHER_CAP: ErrorReason
ERROR_METADATA_KEY_UNSPECIFIED: ErrorMetadataKey
ERROR_METADATA_KEY_ID: ErrorMetadataKey
ERROR_METADATA_KEY_STATUS: ErrorMetadataKey
ERROR_METADATA_KEY_DECIDED_BY: ErrorMetadataKey
ERROR_METADATA_KEY_REASON: ErrorMetadataKey
ERROR_METADATA_KEY_DECIDED_AT: ErrorMetadataKey
ERROR_METADATA_KEY_CONTEXT_DIGEST: ErrorMetadataKey
ERROR_METADATA_KEY_EXPECTED_CONTEXT_DIGEST: ErrorMetadataKey
ERROR_METADATA_KEY_CAUSE: ErrorMetadataKey
ERROR_METADATA_KEY_VOTER: ErrorMetadataKey
ERROR_METADATA_KEY_DECISION: ErrorMetadataKey
ERROR_METADATA_KEY_SCOPE: ErrorMetadataKey

class Vote(_message.Message):
    __slots__ = ("voter", "decision", "reason", "voted_at")
    VOTER_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VOTED_AT_FIELD_NUMBER: _ClassVar[int]
    voter: str
    decision: Decision
    reason: str
    voted_at: _timestamp_pb2.Timestamp
    def __init__(self, voter: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., reason: _Optional[str] = ..., voted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApprovalPolicy(_message.Message):
    __slots__ = ("name", "voters", "allow_requester_vote", "remind_after")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_REQUESTER_VOTE_FIELD_NUMBER: _ClassVar[int]
    REMIND_AFTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    voters: _containers.RepeatedScalarFieldContainer[str]
    allow_requester_vote: bool
    remind_after: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    def __init__(self, name: _Optional[str] = ..., voters: _Optional[_Iterable[str]] = ..., allow_requester_vote: _Optional[bool] = ..., remind_after: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("id", "approval_type", "agent_id", "requester", "context", "labels", "idempotency_key", "created_at", "deadline", "status", "decided_by", "reason", "decided_at", "context_digest", "votes", "required_approvals", "on_timeout", "policy")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    ON_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    id: str
    approval_type: str
    agent_id: str
    requester: str
    context: _struct_pb2.Struct
    labels: _containers.ScalarMap[str, str]
    idempotency_key: str
    created_at: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    status: ApprovalStatus
    decided_by: str
    reason: str
    decided_at: _timestamp_pb2.Timestamp
    context_digest: str
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    required_approvals: int
    on_timeout: OnTimeout
    policy: ApprovalPolicy
    def __init__(self, id: _Optional[str] = ..., approval_type: _Optional[str] = ..., agent_id: _Optional[str] = ..., requester: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ApprovalStatus, str]] = ..., decided_by: _Optional[str] = ..., reason: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context_digest: _Optional[str] = ..., votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ..., required_approvals: _Optional[int] = ..., on_timeout: _Optional[_Union[OnTimeout, str]] = ..., policy: _Optional[_Union[ApprovalPolicy, _Mapping]] = ...) -> None: ...

class RequestApprovalRequest(_message.Message):
    __slots__ = ("approval_type", "agent_id", "context", "labels", "timeout", "idempotency_key")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPROVAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    approval_type: str
    agent_id: str
    context: _struct_pb2.Struct
    labels: _containers.ScalarMap[str, str]
    timeout: _duration_pb2.Duration
    idempotency_key: str
    def __init__(self, approval_type: _Optional[str] = ..., agent_id: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RequestApprovalResponse(_message.Message):
    __slots__ = ("approval", "approved")
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    approved: bool
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ..., approved: _Optional[bool] = ...) -> None: ...

class CreateApprovalRequest(_message.Message):
    __slots__ = ("approval_type", "agent_id", "context", "labels", "timeout", "idempotency_key")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPROVAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    approval_type: str
    agent_id: str
    context: _struct_pb2.Struct
    labels: _containers.ScalarMap[str, str]
    timeout: _duration_pb2.Duration
    idempotency_key: str
    def __init__(self, approval_type: _Optional[str] = ..., agent_id: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CreateApprovalResponse(_message.Message):
    __slots__ = ("approval", "created")
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    created: bool
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class AwaitApprovalRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class AwaitApprovalResponse(_message.Message):
    __slots__ = ("approval", "approved")
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    approved: bool
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ..., approved: _Optional[bool] = ...) -> None: ...

class WatchPendingRequest(_message.Message):
    __slots__ = ("approval_types", "agent_id", "labels", "cursor")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APPROVAL_TYPES_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    approval_types: _containers.RepeatedScalarFieldContainer[str]
    agent_id: str
    labels: _containers.ScalarMap[str, str]
    cursor: str
    def __init__(self, approval_types: _Optional[_Iterable[str]] = ..., agent_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., cursor: _Optional[str] = ...) -> None: ...

class WatchPendingResponse(_message.Message):
    __slots__ = ("cursor", "added", "resolved", "synced", "updated")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    added: Approval
    resolved: Approval
    synced: Synced
    updated: Approval
    def __init__(self, cursor: _Optional[str] = ..., added: _Optional[_Union[Approval, _Mapping]] = ..., resolved: _Optional[_Union[Approval, _Mapping]] = ..., synced: _Optional[_Union[Synced, _Mapping]] = ..., updated: _Optional[_Union[Approval, _Mapping]] = ...) -> None: ...

class Synced(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespondRequest(_message.Message):
    __slots__ = ("id", "decision", "reason", "responder", "expected_context_digest")
    ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CONTEXT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    id: str
    decision: Decision
    reason: str
    responder: str
    expected_context_digest: str
    def __init__(self, id: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., reason: _Optional[str] = ..., responder: _Optional[str] = ..., expected_context_digest: _Optional[str] = ...) -> None: ...

class RespondResponse(_message.Message):
    __slots__ = ("approval",)
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ...) -> None: ...

class GetApprovalRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetApprovalResponse(_message.Message):
    __slots__ = ("approval",)
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ...) -> None: ...

class ListApprovalsRequest(_message.Message):
    __slots__ = ("statuses", "approval_types", "agent_id", "labels", "page_size", "page_token")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_TYPES_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ApprovalStatus]
    approval_types: _containers.RepeatedScalarFieldContainer[str]
    agent_id: str
    labels: _containers.ScalarMap[str, str]
    page_size: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[ApprovalStatus, str]]] = ..., approval_types: _Optional[_Iterable[str]] = ..., agent_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApprovalsResponse(_message.Message):
    __slots__ = ("approvals", "next_page_token")
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    next_page_token: str
    def __init__(self, approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelApprovalRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelApprovalResponse(_message.Message):
    __slots__ = ("approval",)
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    approval: Approval
    def __init__(self, approval: _Optional[_Union[Approval, _Mapping]] = ...) -> None: ...
