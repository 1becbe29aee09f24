"""Python client for approvald: human approval gates as a service.

- `ApprovalGate`: attune-ai's API (request_approval, get_pending_approvals,
  respond_to_approval), for code that already uses it.
- `ApprovalClient`: every operation (request, create, await_, watch_pending,
  respond, get, list, cancel); `approvald.aio` has the asyncio variants.
- `token=` on either authenticates every call; `tls_credentials()` builds
  the TLS settings for `credentials=`.
- The generated protobuf and gRPC code is `approval.v1.approval_pb2(_grpc)`.
"""

from ._model import Approval, OnTimeout, Status, Vote, WatchEvent
from .client import DEFAULT_TARGET, ApprovalClient, WatchStream
from .credentials import tls_credentials
from .errors import (
    AlreadyDecided,
    ApprovalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    VoteRefused,
    WaitTimedOut,
)
from .gate import ApprovalGate, ApprovalRequest, ApprovalResponse

__all__ = [
    "DEFAULT_TARGET",
    "AlreadyDecided",
    "Approval",
    "ApprovalClient",
    "ApprovalError",
    "ApprovalGate",
    "ApprovalRequest",
    "ApprovalResponse",
    "InvalidArgument",
    "NotFound",
    "OnTimeout",
    "PermissionDenied",
    "Status",
    "Unauthenticated",
    "Unavailable",
    "Vote",
    "VoteRefused",
    "WaitTimedOut",
    "WatchEvent",
    "WatchStream",
    "tls_credentials",
]
