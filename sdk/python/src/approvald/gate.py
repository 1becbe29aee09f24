"""`ApprovalGate`: attune-ai's approval-gate API (attune.telemetry.ApprovalGate,
attune-ai 16.4.0), served by approvald.

Code written against attune-ai's `ApprovalGate` runs unchanged but for the
import; the service is found from `target=`, else the APPROVAL_SERVER
environment variable, else 127.0.0.1:50051:

    from approvald import ApprovalGate     # was: from attune.telemetry import ApprovalGate
    gate = ApprovalGate(memory, agent_id="deployer")    # memory is accepted and ignored

Kept from attune: the signature, the result classes (to_dict/from_dict
included), the fail-closed contract (backend trouble never raises: a request
comes back rejected with the reason, a response returns False, the listing
is empty), the expiry reason "Approval timeout after {timeout}s", types and
contexts attune accepted. What changes is listed in the README ("Switching
from attune-ai"): the waiter wakes when the decision is made (no polling),
the first decision wins, unknown ids are refused, and request ids are the
service's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import grpc

from ._model import Approval, Status
from .client import DEFAULT_TARGET, ApprovalClient
from .errors import (
    AlreadyDecided,
    ApprovalError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    WaitTimedOut,
)

logger = logging.getLogger(__name__)

#: `responder` of a result that nobody decided (it timed out, or the gate
#: could not ask), as in attune-ai.
SYSTEM_RESPONDER = "system"

#: The environment variable naming approvald's address when no target is given.
SERVER_ENV = "APPROVAL_SERVER"

#: The label that keeps an approval type the service's names do not allow
#: ("deploy to production"), as the requester wrote it (see `service_type`).
TYPE_LABEL = "attune.approval_type"

#: How long past its `timeout` `request_approval` may take when the service
#: is slow or unreachable, before it gives up with a rejection.
GRACE_SECONDS = 2.0

_SERVICE_TYPE_CHAR = re.compile(r"[^A-Za-z0-9._:/-]")

#: attune's status words for the service's statuses (attune has no cancel).
_ATTUNE_STATUS = {
    Status.PENDING: "pending",
    Status.APPROVED: "approved",
    Status.REJECTED: "rejected",
    Status.EXPIRED: "timeout",
    Status.CANCELLED: "cancelled",
}


def service_type(approval_type: str) -> tuple[str, dict[str, str]]:
    """The approval type the service stores, and the labels that keep the
    original: a type of letters, digits and . _ - : / is sent as is; any
    other character (a space...) is sent as "_" and the type as written goes
    in the label `attune.approval_type`, which the gate shows and filters on,
    so "deploy to production" and "deploy_to_production" stay distinct."""
    mapped = _SERVICE_TYPE_CHAR.sub("_", approval_type)
    if mapped == approval_type and approval_type:
        return approval_type, {}
    return mapped or "_", {TYPE_LABEL: approval_type}


def _shown_type(approval: Approval) -> str:
    return approval.labels.get(TYPE_LABEL, approval.approval_type)


def _parse_timestamp(timestamp: Any) -> datetime:
    """attune's reading of a serialized timestamp: ISO text (a trailing Z
    allowed), a datetime, or missing (now); naive ones are taken as UTC."""
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=timezone.utc)
    elif not isinstance(timestamp, datetime):
        timestamp = datetime.now(timezone.utc)
    elif timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    return timestamp


def _timestamp_text(timestamp: Any) -> Any:
    return timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp


@dataclass
class ApprovalRequest:
    """A pending approval, as `get_pending_approvals` lists it."""

    request_id: str
    approval_type: str
    agent_id: str
    context: dict[str, Any]
    timestamp: datetime
    timeout_seconds: float
    status: str = "pending"  # "pending", "approved", "rejected", "timeout", "cancelled"

    def to_dict(self) -> dict[str, Any]:
        """attune's serialization: the same keys, the timestamp as ISO text."""
        return {
            "request_id": self.request_id,
            "approval_type": self.approval_type,
            "agent_id": self.agent_id,
            "context": self.context,
            "timestamp": _timestamp_text(self.timestamp),
            "timeout_seconds": self.timeout_seconds,
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ApprovalRequest":
        return cls(
            request_id=data["request_id"],
            approval_type=data["approval_type"],
            agent_id=data["agent_id"],
            context=data.get("context", {}),
            timestamp=_parse_timestamp(data.get("timestamp")),
            timeout_seconds=data.get("timeout_seconds", 300.0),
            status=data.get("status", "pending"),
        )

    @classmethod
    def from_approval(cls, approval: Approval) -> "ApprovalRequest":
        return cls(
            request_id=approval.id,
            approval_type=_shown_type(approval),
            agent_id=approval.agent_id,
            context=approval.context,
            timestamp=approval.created_at,
            timeout_seconds=(approval.deadline - approval.created_at).total_seconds(),
            status=_ATTUNE_STATUS[approval.status],
        )


@dataclass
class ApprovalResponse:
    """The outcome of `request_approval`: `approved` is True only when a
    human approved. When nobody decided in time, approved is False, responder
    "system" and reason "Approval timeout after {timeout}s"."""

    request_id: str
    approved: bool
    responder: str
    reason: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: EXPIRED, REJECTED, CANCELLED... (attune-ai has no such field; not in
    #: to_dict).
    status: Status = Status.PENDING

    def to_dict(self) -> dict[str, Any]:
        """attune's serialization: the same keys, the timestamp as ISO text."""
        return {
            "request_id": self.request_id,
            "approved": self.approved,
            "responder": self.responder,
            "reason": self.reason,
            "timestamp": _timestamp_text(self.timestamp),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ApprovalResponse":
        approved = data.get("approved", False)
        return cls(
            request_id=data["request_id"],
            approved=approved,
            responder=data.get("responder", "unknown"),
            reason=data.get("reason", ""),
            timestamp=_parse_timestamp(data.get("timestamp")),
            status=Status.APPROVED if approved else Status.REJECTED,
        )

    @classmethod
    def from_approval(
        cls, approval: Approval, timeout_reason: Optional[str] = None
    ) -> "ApprovalResponse":
        """`timeout_reason` replaces the service's reason for an expired one."""
        expired = approval.status is Status.EXPIRED
        return cls(
            request_id=approval.id,
            approved=approval.approved,
            responder=approval.decided_by or SYSTEM_RESPONDER,
            reason=timeout_reason if expired and timeout_reason else approval.reason,
            timestamp=approval.decided_at or datetime.now(timezone.utc),
            status=approval.status,
        )


class ApprovalGate:
    """Human approval gates for workflow control, backed by approvald.

    attune-ai's signature: `memory` (attune's Redis-backed memory) is
    accepted, kept as `.memory` and otherwise ignored; approvals go to
    approvald at `target`, else $APPROVAL_SERVER, else 127.0.0.1:50051. A
    string as first argument is taken as the target (this package's earlier
    signature)."""

    DEFAULT_TIMEOUT = 300.0
    #: attune's polling period; unused here (the waiter wakes on the decision).
    POLL_INTERVAL = 1.0

    def __init__(
        self,
        memory: Any = None,
        agent_id: Optional[str] = None,
        *,
        target: Optional[str] = None,
        client: Optional[ApprovalClient] = None,
        token: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
    ) -> None:
        """`token` authenticates every call (see `ApprovalClient`); with
        authentication on, the server records the token's principal as the
        requester and as `responder`, whatever `responder` says."""
        if isinstance(memory, str) and target is None:
            target, memory = memory, None
        if client is not None:
            where = "the given client"
        elif target is not None:
            where = f"{target} (target argument)"
        elif os.environ.get(SERVER_ENV):
            target = os.environ[SERVER_ENV]
            where = f"{target} (from ${SERVER_ENV})"
        else:
            target = DEFAULT_TARGET
            where = f"{target} (the default; set ${SERVER_ENV} or target=)"
        self.memory = memory
        self.target = target
        if memory is not None:
            logger.warning(
                "ApprovalGate ignores memory=%s: approvals go to approvald at %s",
                type(memory).__name__,
                where,
            )
        self.client = client or ApprovalClient(
            target or DEFAULT_TARGET, agent_id=agent_id, token=token, credentials=credentials
        )
        self.agent_id = agent_id if agent_id is not None else self.client.agent_id

    def request_approval(
        self,
        approval_type: str,
        context: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> ApprovalResponse:
        """Requests a human decision and blocks until it is made or `timeout`
        seconds (default 300) pass; then approved is False, responder "system"
        and reason "Approval timeout after {timeout}s". Never raises for
        trouble reaching the service (or its Redis): it keeps retrying until
        `timeout` (plus GRACE_SECONDS) and returns a rejection whose reason
        says what was unreachable. A context that is not JSON is a rejection
        too ("Storage error: ..."), as in attune."""
        timeout = timeout if timeout is not None else self.DEFAULT_TIMEOUT
        timeout_reason = f"Approval timeout after {timeout}s"
        try:
            # attune stores the context as JSON: the same values pass (tuples
            # become lists, keys strings) and the same ones fail.
            context = json.loads(json.dumps(context or {}))
        except (TypeError, ValueError) as error:
            logger.error("Failed to store approval request: %s", error)
            return self._refused("", f"Storage error: {error}")
        if timeout <= 0:
            # attune gives up before its first look: nobody could decide.
            logger.warning("Approval timeout: %s (timeout=%ss)", approval_type, timeout)
            return self._refused("", timeout_reason)
        stored_type, labels = service_type(approval_type)
        key = str(uuid.uuid4())
        try:
            approval = self.client.request(
                stored_type,
                context,
                labels=labels,
                timeout=timeout,
                idempotency_key=key,
                wait=timeout + GRACE_SECONDS,
            )
        except WaitTimedOut:
            logger.warning("Approval timeout: %s (no answer from approvald)", approval_type)
            return self._refused("", timeout_reason)
        except Unavailable as error:
            reason = f"approvald at {self.target} unavailable: {error.message}"
            logger.warning("Cannot request approval: %s", reason)
            return self._refused("", reason)
        except ApprovalError as error:
            logger.error("Failed to store approval request: %s", error)
            return self._refused("", f"Storage error: {error}")
        return ApprovalResponse.from_approval(approval, timeout_reason)

    def respond_to_approval(
        self, request_id: str, approved: bool, responder: str, reason: str = ""
    ) -> bool:
        """Records a decision. True when it is the decision on record (also for
        an identical retry); False when the approval is unknown (or the id
        malformed), was already decided otherwise (the first decision wins),
        or the service cannot be reached. With authentication on, raises
        PermissionDenied when the token's principal may not decide it (its
        own request, or a type outside its approver pattern)."""
        try:
            self.client.respond(request_id, approved, responder=responder, reason=reason)
            return True
        except AlreadyDecided as refused:
            logger.warning(
                "approval %s was already %s by %r: %s",
                request_id,
                refused.status,
                refused.decided_by,
                refused.reason,
            )
        except NotFound:
            logger.warning("approval %s does not exist", request_id)
        except (Unauthenticated, PermissionDenied):
            raise
        except ApprovalError as error:
            logger.warning("Failed to store approval response for %r: %s", request_id, error)
        return False

    def get_pending_approvals(self, approval_type: Optional[str] = None) -> list[ApprovalRequest]:
        """Pending approvals, oldest first, optionally of one type; [] when
        the service cannot be reached."""
        try:
            if approval_type:
                stored_type, _ = service_type(approval_type)
                pending = [
                    a
                    for a in self.client.list(
                        statuses=[Status.PENDING], approval_types=[stored_type]
                    )
                    if _shown_type(a) == approval_type
                ]
            else:
                pending = list(self.client.list(statuses=[Status.PENDING]))
        except (Unauthenticated, PermissionDenied):
            raise
        except ApprovalError as error:
            logger.error("Failed to get pending approvals: %s", error)
            return []
        return [ApprovalRequest.from_approval(a) for a in reversed(pending)]

    def clear_expired_requests(self) -> int:
        """attune's sweep of timed-out requests: the service expires
        approvals itself, at their deadline, so there is never one to clear."""
        return 0

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _refused(request_id: str, reason: str) -> ApprovalResponse:
        return ApprovalResponse(
            request_id=request_id,
            approved=False,
            responder=SYSTEM_RESPONDER,
            reason=reason,
            status=Status.REJECTED,
        )
