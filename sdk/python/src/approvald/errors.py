"""Errors a program can act on, made from the service's gRPC status and its
google.rpc details (ErrorInfo for an already-final approval, BadRequest for
a bad field). The ErrorInfo reasons and metadata keys are the proto's
ErrorReason and ErrorMetadataKey values, spelled as the proto documents."""

from __future__ import annotations

from typing import Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from approval.v1 import approval_pb2 as pb

from ._model import Status


def _reason(value: int) -> str:
    """The ErrorInfo.reason of an ErrorReason: its name without the prefix."""
    return pb.ErrorReason.Name(value).removeprefix("ERROR_REASON_")


def _key(value: int) -> str:
    """The ErrorInfo.metadata key of an ErrorMetadataKey: its name without
    the prefix, in lowercase."""
    return pb.ErrorMetadataKey.Name(value).removeprefix("ERROR_METADATA_KEY_").lower()


_ALREADY_FINAL = _reason(pb.ERROR_REASON_ALREADY_FINAL)
_STATUS = _key(pb.ERROR_METADATA_KEY_STATUS)
_DECIDED_BY = _key(pb.ERROR_METADATA_KEY_DECIDED_BY)
_REASON = _key(pb.ERROR_METADATA_KEY_REASON)
_DECIDED_AT = _key(pb.ERROR_METADATA_KEY_DECIDED_AT)


class ApprovalError(Exception):
    """A call failed. `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgument(ApprovalError):
    """The request was refused; `field` names the bad field when known."""

    def __init__(self, code: grpc.StatusCode, message: str, field: Optional[str]) -> None:
        super().__init__(code, message)
        self.field = field


class NotFound(ApprovalError):
    """Unknown (or aged-out) approval id."""


class AlreadyDecided(ApprovalError):
    """The approval was already final with another outcome: the first wins.

    `status`, `decided_by`, `reason` and `decided_at` tell how it ended.
    """

    def __init__(self, code: grpc.StatusCode, message: str, metadata: dict[str, str]) -> None:
        super().__init__(code, message)
        status = metadata.get(_STATUS, "").upper()
        #: How it ended (a Status), or None if the service did not say.
        self.status = Status(status) if status in Status.__members__ else None
        self.decided_by = metadata.get(_DECIDED_BY, "")
        self.reason = metadata.get(_REASON, "")
        self.decided_at = metadata.get(_DECIDED_AT, "")


class VoteRefused(ApprovalError):
    """The vote was refused and nothing changed. `reason` is
    "ALREADY_VOTED" (this voter voted otherwise: votes cannot be changed) or
    "CONTEXT_DIGEST_MISMATCH" (the context is not the one expected)."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        super().__init__(code, message)
        self.reason = reason


class Unauthenticated(ApprovalError):
    """The service has authentication on and the call had no valid
    credentials: pass `token=` (or a client certificate)."""


class PermissionDenied(ApprovalError):
    """The caller is authenticated but may not do this: its roles do not
    cover the approval type, or it is deciding its own request."""


class Unavailable(ApprovalError):
    """The service (or its Redis) cannot be reached: retry, on any replica."""


class WaitTimedOut(ApprovalError):
    """The caller's wait ended before a decision. The approval stays pending:
    call again with the same `idempotency_key` to re-attach."""

    def __init__(self, code: grpc.StatusCode, message: str, idempotency_key: str = "") -> None:
        super().__init__(code, message)
        self.idempotency_key = idempotency_key


def from_rpc_error(error: grpc.RpcError, idempotency_key: str = "") -> ApprovalError:
    """The ApprovalError for a failed call (sync or asyncio)."""
    code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
    message: str = error.details() or ""  # type: ignore[attr-defined]
    details = _status_details(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field = None
        for detail in details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request) and bad_request.field_violations:
                field = bad_request.field_violations[0].field
        return InvalidArgument(code, message, field)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        for detail in details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.reason == _ALREADY_FINAL:
                return AlreadyDecided(code, message, dict(info.metadata))
            if info.reason in ("ALREADY_VOTED", "CONTEXT_DIGEST_MISMATCH"):
                return VoteRefused(code, message, info.reason)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(code, message)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(code, message)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(code, message)
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(code, message)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return WaitTimedOut(code, message, idempotency_key)
    return ApprovalError(code, message)


def _status_details(error: grpc.RpcError) -> list:
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        return []
    return list(status.details) if status is not None else []
