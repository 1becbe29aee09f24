"""Plain Python values for what the service returns, and the conversions
between them and the generated protobuf messages (one place for both the sync
and the asyncio client)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional, Union

from google.protobuf import duration_pb2, json_format, struct_pb2

from approval.v1 import approval_pb2 as pb

#: An approval timeout: seconds, or a timedelta.
Timeout = Union[float, int, timedelta]


class Status(str, enum.Enum):
    """Where an approval is in its life. PENDING is the only non-final one."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"

    @classmethod
    def from_proto(cls, value: int) -> "Status":
        return cls(pb.ApprovalStatus.Name(value).removeprefix("APPROVAL_STATUS_"))

    def to_proto(self) -> int:
        return pb.ApprovalStatus.Value(f"APPROVAL_STATUS_{self.value}")


class OnTimeout(str, enum.Enum):
    """What the gate does when the deadline passes before a decision (the
    status is EXPIRED either way)."""

    #: The gate does not proceed (the default).
    REJECT = "REJECT"
    #: "Proceed unless someone objects": the gate proceeds.
    APPROVE = "APPROVE"

    @classmethod
    def from_proto(cls, value: int) -> "OnTimeout":
        return cls.APPROVE if value == pb.ON_TIMEOUT_APPROVE else cls.REJECT


@dataclass(frozen=True)
class Vote:
    """One voter's answer. `approve` is True for an approval, False for a
    reject (a veto)."""

    voter: str
    approve: bool
    reason: str
    voted_at: datetime

    @classmethod
    def from_proto(cls, message: pb.Vote) -> "Vote":
        return cls(
            voter=message.voter,
            approve=message.decision == pb.DECISION_APPROVE,
            reason=message.reason,
            voted_at=message.voted_at.ToDatetime(timezone.utc),
        )


@dataclass(frozen=True)
class Approval:
    """One request for a human decision, as the service stored it."""

    id: str
    approval_type: str
    agent_id: str
    requester: str
    context: dict[str, Any]
    labels: dict[str, str]
    idempotency_key: str
    created_at: datetime
    deadline: datetime
    status: Status
    #: Who made it final (responder or canceller); empty when it expired.
    decided_by: str = ""
    #: The responder's or canceller's reason, or why it expired.
    reason: str = ""
    decided_at: Optional[datetime] = None
    #: "sha256:" + hex of the canonical JSON of `context`: send it back as
    #: `expected_context_digest` to decide only on what was seen.
    context_digest: str = ""
    #: Every vote so far, in the order cast.
    votes: tuple[Vote, ...] = ()
    #: Distinct approvals it needs (its policy's; 1 by default).
    required_approvals: int = 1
    #: What its deadline means for the gate.
    on_timeout: OnTimeout = OnTimeout.REJECT
    #: The policy it was created under (its matching pattern, "deploy:*");
    #: empty when no policy matched its type.
    policy: str = ""
    proto: pb.Approval = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    @property
    def approved(self) -> bool:
        """Whether the gate proceeds: its voters approved it, or it expired
        under a policy whose on_timeout is "approve"."""
        if self.status is Status.EXPIRED:
            return self.on_timeout is OnTimeout.APPROVE
        return self.status is Status.APPROVED

    @property
    def final(self) -> bool:
        return self.status is not Status.PENDING

    @classmethod
    def from_proto(cls, message: pb.Approval) -> "Approval":
        return cls(
            id=message.id,
            approval_type=message.approval_type,
            agent_id=message.agent_id,
            requester=message.requester,
            context=integral_numbers(json_format.MessageToDict(message.context)),
            labels=dict(message.labels),
            idempotency_key=message.idempotency_key,
            created_at=message.created_at.ToDatetime(timezone.utc),
            deadline=message.deadline.ToDatetime(timezone.utc),
            status=Status.from_proto(message.status),
            decided_by=message.decided_by,
            reason=message.reason,
            decided_at=(
                message.decided_at.ToDatetime(timezone.utc)
                if message.HasField("decided_at")
                else None
            ),
            context_digest=message.context_digest,
            votes=tuple(Vote.from_proto(v) for v in message.votes),
            required_approvals=max(message.required_approvals, 1),
            on_timeout=OnTimeout.from_proto(message.on_timeout),
            policy=message.policy.name,
            proto=message,
        )


@dataclass(frozen=True)
class WatchEvent:
    """One event of `watch_pending`.

    kind is "added" (pending: from the snapshot or new), "updated" (still
    pending, changed: a vote arrived), "resolved" (became final), "synced"
    (the snapshot is complete, live events follow) or "reset" (the resume
    cursor had aged out: a fresh snapshot follows).
    """

    kind: str
    approval: Optional[Approval]
    #: Resume point; empty during the snapshot.
    cursor: str

    @classmethod
    def from_proto(cls, message: pb.WatchPendingResponse) -> "WatchEvent":
        kind = message.WhichOneof("event") or "unknown"
        approval = None
        if kind in ("added", "updated", "resolved"):
            approval = Approval.from_proto(getattr(message, kind))
        return cls(kind=kind, approval=approval, cursor=message.cursor)


#: Doubles up to this magnitude hold every integer exactly.
_EXACT_INTEGERS = 2**53


def integral_numbers(value: Any) -> Any:
    """`value` with every integral float (60.0) as an int (60), in nested
    dicts and lists too, and the keys of every dict sorted.

    A context is a google.protobuf.Struct, whose numbers are all doubles: the
    int 60 sent comes back as 60.0. Integers are what programs send far more
    often than integral floats, so they get their type back (60.0 == 60
    either way). Beyond 2**53 a double no longer holds every integer, so such
    numbers stay floats (send big integers as strings)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= _EXACT_INTEGERS:
            return int(value)
        return value
    if isinstance(value, dict):
        # A Struct is a map: the order sent is lost (and protobuf's map
        # order is arbitrary), so keys come back sorted, at every level.
        return {k: integral_numbers(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [integral_numbers(v) for v in value]
    return value


def to_struct(context: Optional[Mapping[str, Any]]) -> Optional[struct_pb2.Struct]:
    if context is None:
        return None
    struct = struct_pb2.Struct()
    struct.update(dict(context))
    return struct


def to_duration(timeout: Optional[Timeout]) -> Optional[duration_pb2.Duration]:
    if timeout is None:
        return None
    if not isinstance(timeout, timedelta):
        timeout = timedelta(seconds=timeout)
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timeout)
    return duration


def creation_fields(
    approval_type: str,
    agent_id: Optional[str],
    context: Optional[Mapping[str, Any]],
    labels: Optional[Mapping[str, str]],
    timeout: Optional[Timeout],
    idempotency_key: Optional[str],
) -> dict[str, Any]:
    """The fields shared by RequestApprovalRequest and CreateApprovalRequest."""
    return dict(
        approval_type=approval_type,
        agent_id=agent_id or "",
        context=to_struct(context),
        labels=dict(labels or {}),
        timeout=to_duration(timeout),
        idempotency_key=idempotency_key or "",
    )
