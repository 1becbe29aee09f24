"""`ApprovalGate`: attune-ai's approval-gate API, served by approvald.

Code written against attune-ai's `ApprovalGate` runs unchanged but for the
import and the constructor:

    from approvald import ApprovalGate            # was: from attune... import ApprovalGate
    gate = ApprovalGate("127.0.0.1:50051", agent_id="deployer")   # was: ApprovalGate(agent_id=...)

What changes underneath: the waiter wakes when the decision is made (no
polling), the first decision wins (`respond_to_approval` returns False for a
conflicting one instead of overwriting it), an unknown id is refused, and an
unreachable service raises `Unavailable` instead of looking like a rejection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import grpc

from ._model import Approval, Status
from .client import DEFAULT_TARGET, ApprovalClient
from .errors import AlreadyDecided, NotFound

logger = logging.getLogger(__name__)

#: `responder` of a result that nobody decided (the approval expired).
SYSTEM_RESPONDER = "system"


@dataclass
class ApprovalRequest:
    """A pending approval, as `get_pending_approvals` lists it."""

    request_id: str
    approval_type: str
    agent_id: str
    context: dict[str, Any]
    timestamp: datetime
    timeout_seconds: float
    status: str = "pending"

    @classmethod
    def from_approval(cls, approval: Approval) -> "ApprovalRequest":
        return cls(
            request_id=approval.id,
            approval_type=approval.approval_type,
            agent_id=approval.agent_id,
            context=approval.context,
            timestamp=approval.created_at,
            timeout_seconds=(approval.deadline - approval.created_at).total_seconds(),
            status=approval.status.value.lower(),
        )


@dataclass
class ApprovalResponse:
    """The outcome of `request_approval`: `approved` is True only when a
    human approved. An expired approval gives approved=False, responder
    "system" and the reason "deadline passed before a decision"."""

    request_id: str
    approved: bool
    responder: str
    reason: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    #: EXPIRED, REJECTED, CANCELLED... (attune-ai has no such field).
    status: Status = Status.PENDING

    @classmethod
    def from_approval(cls, approval: Approval) -> "ApprovalResponse":
        return cls(
            request_id=approval.id,
            approved=approval.approved,
            responder=approval.decided_by or SYSTEM_RESPONDER,
            reason=approval.reason,
            timestamp=approval.decided_at or datetime.now(timezone.utc),
            status=approval.status,
        )


class ApprovalGate:
    """Human approval gates for workflow control, backed by approvald."""

    DEFAULT_TIMEOUT = 300.0

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        agent_id: Optional[str] = None,
        *,
        client: Optional[ApprovalClient] = None,
        token: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
    ) -> None:
        """`token` authenticates every call (see `ApprovalClient`); with
        authentication on, the server records the token's principal as the
        requester and as `responder`, whatever `responder` says."""
        self.client = client or ApprovalClient(
            target, agent_id=agent_id, token=token, credentials=credentials
        )
        self.agent_id = agent_id if agent_id is not None else self.client.agent_id

    def request_approval(
        self,
        approval_type: str,
        context: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> ApprovalResponse:
        """Requests a human decision and blocks until it is made or `timeout`
        seconds (default 300) pass; then approved is False with the reason."""
        approval = self.client.request(
            approval_type,
            context or {},
            timeout=timeout if timeout is not None else self.DEFAULT_TIMEOUT,
        )
        return ApprovalResponse.from_approval(approval)

    def respond_to_approval(
        self, request_id: str, approved: bool, responder: str, reason: str = ""
    ) -> bool:
        """Records a decision. True when it is the decision on record (also for
        an identical retry); False when the approval is unknown or was already
        decided otherwise (the first decision wins). With authentication on,
        raises PermissionDenied when the token's principal may not decide it
        (its own request, or a type outside its approver pattern)."""
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
            return False
        except NotFound:
            logger.warning("approval %s does not exist", request_id)
            return False

    def get_pending_approvals(self, approval_type: Optional[str] = None) -> list[ApprovalRequest]:
        """Pending approvals, oldest first, optionally of one type."""
        pending = self.client.list(
            statuses=[Status.PENDING],
            approval_types=[approval_type] if approval_type else None,
        )
        return [ApprovalRequest.from_approval(a) for a in reversed(list(pending))]

    def close(self) -> None:
        self.client.close()
