"""The full synchronous client: every RPC, plus re-attach on connection loss."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, TypeVar

import grpc

from approval.v1 import approval_pb2 as pb
from approval.v1 import approval_pb2_grpc

from ._model import Approval, Status, Timeout, WatchEvent, creation_fields
from .credentials import BearerToken
from .errors import Unavailable, from_rpc_error

#: Where approvald listens by default.
DEFAULT_TARGET = "127.0.0.1:50051"

#: Reconnect quickly after a replica restarts (gRPC's default backoff starts
#: at 1 s and grows to 2 min).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

#: A call that failed with UNAVAILABLE after running this long had reached the
#: service (it was waiting for a decision), so its failure starts a new
#: reconnect budget instead of using up the current one.
ATTACHED_AFTER_SECONDS = 1.0

T = TypeVar("T")


def channel_options(target: str) -> list[tuple[str, Any]]:
    """CHANNEL_OPTIONS, plus a valid :authority for a list of replicas
    ("ipv4:a:1,b:2" would otherwise be sent as the authority, which HTTP/2
    servers refuse)."""
    if "," in target:
        return CHANNEL_OPTIONS + [("grpc.default_authority", "approvald")]
    return CHANNEL_OPTIONS


class ApprovalClient:
    """A connection to approvald (any replica) and every operation on approvals.

    `target` is a gRPC target: "host:port", or several replicas as
    "ipv4:127.0.0.1:50051,127.0.0.1:50052". `reconnect_timeout` bounds how
    long a blocked call or a watch keeps trying to reach the service after it
    lost its connection.

    `token` is sent as `authorization: Bearer <token>` with every call (a
    static token or a JWT), over TLS or plaintext. `credentials` turns TLS on:
    `approvald.tls_credentials(ca_cert=..., client_cert=..., client_key=...)`.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        agent_id: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        channel: Optional[grpc.Channel] = None,
        reconnect_timeout: float = 60.0,
        token: Optional[str] = None,
    ) -> None:
        if channel is None:
            if credentials is None:
                channel = grpc.insecure_channel(target, options=channel_options(target))
            else:
                channel = grpc.secure_channel(target, credentials, options=channel_options(target))
            if token is not None:
                channel = grpc.intercept_channel(channel, BearerToken(token))
        elif token is not None:
            raise ValueError(
                "token with channel: add approvald.credentials.BearerToken(token) "
                "to your channel (grpc.intercept_channel) instead"
            )
        self._channel = channel
        self._stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        self.agent_id = agent_id
        self.reconnect_timeout = reconnect_timeout

    # -- the blocking call agents make -------------------------------------

    def request(
        self,
        approval_type: str,
        context: Optional[Mapping[str, Any]] = None,
        *,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[Timeout] = None,
        idempotency_key: Optional[str] = None,
        wait: Optional[float] = None,
    ) -> Approval:
        """Creates an approval and blocks until it is final.

        `timeout` is how long the approval stays open (server default 300 s);
        at its end the approval is EXPIRED (approved is False). `wait` bounds
        this call only: when it ends first, WaitTimedOut is raised and the
        approval stays pending; call again with its `idempotency_key` (one is
        made up when not given) to re-attach. A lost connection or a replica
        shutting down re-attaches by itself.
        """
        key = idempotency_key or str(uuid.uuid4())
        message = pb.RequestApprovalRequest(
            **creation_fields(approval_type, self.agent_id, context, labels, timeout, key)
        )
        response = self._reattaching(
            lambda remaining: self._stub.RequestApproval(message, timeout=remaining), wait, key
        )
        return Approval.from_proto(response.approval)

    def create(
        self,
        approval_type: str,
        context: Optional[Mapping[str, Any]] = None,
        *,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[Timeout] = None,
        idempotency_key: Optional[str] = None,
    ) -> Approval:
        """Creates an approval (or returns the one with this idempotency_key;
        one is made up when not given) and returns at once."""
        # Always a key (made up when not given): a retry after an ambiguous
        # failure then returns the same approval instead of making a second.
        key = idempotency_key or str(uuid.uuid4())
        message = pb.CreateApprovalRequest(
            **creation_fields(approval_type, self.agent_id, context, labels, timeout, key)
        )
        return Approval.from_proto(self._unary(self._stub.CreateApproval, message).approval)

    def await_(self, approval_id: str, *, wait: Optional[float] = None) -> Approval:
        """Blocks until the approval is final (at once if it already is).
        Named with a trailing underscore because `await` is a keyword."""
        message = pb.AwaitApprovalRequest(id=approval_id)
        response = self._reattaching(
            lambda remaining: self._stub.AwaitApproval(message, timeout=remaining), wait, ""
        )
        return Approval.from_proto(response.approval)

    # -- what humans (and their tools) do ---------------------------------

    def respond(
        self,
        approval_id: str,
        approved: bool,
        *,
        responder: str,
        reason: str = "",
        expected_context_digest: str = "",
    ) -> Approval:
        """Records a vote. With one required approval (the default) the first
        decision wins: a conflicting one raises AlreadyDecided naming the
        winner; an identical retry succeeds. Under a policy needing several
        approvals the approval stays PENDING until enough voters approved
        (one reject ends it); a changed vote raises VoteRefused. With
        `expected_context_digest` (the approval's `context_digest` as seen),
        a different context is refused (VoteRefused) and nothing changes."""
        decision = pb.DECISION_APPROVE if approved else pb.DECISION_REJECT
        message = pb.RespondRequest(
            id=approval_id,
            decision=decision,
            reason=reason,
            responder=responder,
            expected_context_digest=expected_context_digest,
        )
        return Approval.from_proto(self._unary(self._stub.Respond, message).approval)

    def approve(
        self,
        approval_id: str,
        *,
        responder: str,
        reason: str = "",
        expected_context_digest: str = "",
    ) -> Approval:
        return self.respond(
            approval_id,
            True,
            responder=responder,
            reason=reason,
            expected_context_digest=expected_context_digest,
        )

    def reject(
        self,
        approval_id: str,
        *,
        responder: str,
        reason: str = "",
        expected_context_digest: str = "",
    ) -> Approval:
        return self.respond(
            approval_id,
            False,
            responder=responder,
            reason=reason,
            expected_context_digest=expected_context_digest,
        )

    def watch_pending(
        self,
        *,
        approval_types: Optional[Iterable[str]] = None,
        agent_id: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        cursor: Optional[str] = None,
    ) -> "WatchStream":
        """Every pending approval (snapshot), "synced", then live changes.

        The stream resumes by cursor after a lost connection (on any replica:
        no gap, no duplicate). Iterate it; `cancel()` or leaving the loop ends
        it.
        """
        message = pb.WatchPendingRequest(
            approval_types=list(approval_types or []),
            agent_id=agent_id or "",
            labels=dict(labels or {}),
        )
        return WatchStream(self, message, cursor or "")

    # -- reading and withdrawing ------------------------------------------

    def get(self, approval_id: str) -> Approval:
        message = pb.GetApprovalRequest(id=approval_id)
        return Approval.from_proto(self._unary(self._stub.GetApproval, message).approval)

    def list(
        self,
        *,
        statuses: Optional[Iterable[Status]] = None,
        approval_types: Optional[Iterable[str]] = None,
        agent_id: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
    ) -> Iterator[Approval]:
        """Approvals matching the filter, newest first, fetching pages as
        the iteration goes."""
        message = pb.ListApprovalsRequest(
            statuses=[Status(s).to_proto() for s in statuses or []],
            approval_types=list(approval_types or []),
            agent_id=agent_id or "",
            labels=dict(labels or {}),
            page_size=page_size,
        )
        while True:
            page = self._unary(self._stub.ListApprovals, message)
            for approval in page.approvals:
                yield Approval.from_proto(approval)
            if not page.next_page_token:
                return
            message.page_token = page.next_page_token

    def cancel(self, approval_id: str, reason: str = "") -> Approval:
        """Withdraws a pending approval; its waiter returns CANCELLED."""
        message = pb.CancelApprovalRequest(id=approval_id, reason=reason)
        return Approval.from_proto(self._unary(self._stub.CancelApproval, message).approval)

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ApprovalClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- machinery ----------------------------------------------------------

    def _unary(self, method: Callable[..., T], message: Any) -> T:
        try:
            return method(message)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _reattaching(
        self, call: Callable[[Optional[float]], T], wait: Optional[float], key: str
    ) -> T:
        """Runs a blocking call; when the connection is lost (UNAVAILABLE:
        network, or a replica shutting down), waits for the channel to connect
        again, to any replica, and repeats the call, which re-attaches by
        idempotency key or id. Gives up after `reconnect_timeout` without a
        connection, or when `wait` ends."""
        wait_ends = None if wait is None else time.monotonic() + wait
        reconnect = _ReconnectBudget(self.reconnect_timeout, wait_ends)
        while True:
            started = time.monotonic()
            remaining = None if wait_ends is None else max(0.0, wait_ends - started)
            try:
                return call(remaining)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                    raise from_rpc_error(error, key) from None
                reconnect.lost(attached=time.monotonic() - started >= ATTACHED_AFTER_SECONDS)
                self._wait_until_connected(reconnect, error)

    def _wait_until_connected(self, reconnect: "_ReconnectBudget", error: grpc.RpcError) -> None:
        """Pauses, then waits for a connection; raises Unavailable with the
        last failure (no connection, or the service's own, such as its Redis
        being down) once the budget (or the caller's wait) is used up."""
        time.sleep(reconnect.next_pause())
        try:
            remaining = reconnect.remaining()
            if remaining <= 0:
                raise grpc.FutureTimeoutError()
            grpc.channel_ready_future(self._channel).result(timeout=remaining)
        except grpc.FutureTimeoutError:
            raise Unavailable(
                grpc.StatusCode.UNAVAILABLE,
                f"approvald unavailable, gave up retrying: "
                f"{error.details()}",  # type: ignore[attr-defined]
            ) from None


class _ReconnectBudget:
    """How long, and how often, to try reaching the service after a loss."""

    def __init__(self, timeout: float, hard_end: Optional[float]) -> None:
        self.timeout = timeout
        self.hard_end = hard_end
        self.ends: Optional[float] = None
        self.pause = 0.1

    def lost(self, attached: bool) -> None:
        if attached or self.ends is None:
            self.ends = time.monotonic() + self.timeout
            self.pause = 0.1
        if self.hard_end is not None:
            self.ends = min(self.ends, self.hard_end)

    def remaining(self) -> float:
        return max(0.0, (self.ends or 0.0) - time.monotonic())

    def next_pause(self) -> float:
        pause, self.pause = self.pause, min(self.pause * 2, 2.0)
        return min(pause, self.remaining())


class WatchStream(Iterator[WatchEvent]):
    """The events of `ApprovalClient.watch_pending`, resuming by cursor."""

    def __init__(self, client: ApprovalClient, request: pb.WatchPendingRequest, cursor: str):
        self._client = client
        self._request = request
        #: The last resume point seen; pass it to watch_pending(cursor=...)
        #: to continue later.
        self.cursor = cursor
        self._lock = threading.Lock()
        self._call: Any = None
        self._cancelled = False
        self._events = self._run()

    def __next__(self) -> WatchEvent:
        return next(self._events)

    def cancel(self) -> None:
        """Ends the stream (from any thread); iteration stops."""
        with self._lock:
            self._cancelled = True
            if self._call is not None:
                self._call.cancel()

    def close(self) -> None:
        self.cancel()
        self._events.close()

    def __enter__(self) -> "WatchStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> Iterator[WatchEvent]:
        reconnect = _ReconnectBudget(self._client.reconnect_timeout, None)
        yielded_without_cursor = False
        while True:
            self._request.cursor = self.cursor
            with self._lock:
                if self._cancelled:
                    return
                self._call = self._client._stub.WatchPending(self._request)
            received = False
            try:
                for message in self._call:
                    received = True
                    event = WatchEvent.from_proto(message)
                    if event.cursor:
                        self.cursor = event.cursor
                    else:
                        yielded_without_cursor = True
                    yield event
                error: Optional[grpc.RpcError] = None  # the server ended the stream
            except grpc.RpcError as failed:
                error = failed
            finally:
                self._call.cancel()
            if self._cancelled:
                return
            code = error.code() if error is not None else grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
            if code == grpc.StatusCode.OUT_OF_RANGE or (
                code == grpc.StatusCode.UNAVAILABLE and not self.cursor and yielded_without_cursor
            ):
                # The cursor aged out of the event log, or the snapshot broke
                # off: only a fresh snapshot is complete. Say so first.
                self.cursor = ""
                yielded_without_cursor = False
                yield WatchEvent(kind="reset", approval=None, cursor="")
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    continue
            elif code != grpc.StatusCode.UNAVAILABLE:
                raise from_rpc_error(error) from None  # type: ignore[arg-type]
            reconnect.lost(attached=received)
            self._client._wait_until_connected(
                reconnect, error or _StreamEnded()  # type: ignore[arg-type]
            )


class _StreamEnded(grpc.RpcError):
    def details(self) -> str:
        return "the server ended the stream"
