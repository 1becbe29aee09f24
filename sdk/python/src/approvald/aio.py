"""The asyncio variants (grpc.aio): `AsyncApprovalClient` and `AsyncApprovalGate`,
with the same methods as the synchronous ones, awaited."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Optional, TypeVar

import grpc
import grpc.aio

from approval.v1 import approval_pb2 as pb
from approval.v1 import approval_pb2_grpc

from ._model import Approval, Status, Timeout, WatchEvent, creation_fields
from .client import ATTACHED_AFTER_SECONDS, DEFAULT_TARGET, _ReconnectBudget, channel_options
from .credentials import async_bearer_token
from .errors import AlreadyDecided, NotFound, Unavailable, from_rpc_error
from .gate import ApprovalGate, ApprovalRequest, ApprovalResponse

T = TypeVar("T")


class AsyncApprovalClient:
    """`ApprovalClient` for asyncio. Use `async with` or `await close()`."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        agent_id: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        channel: Optional[grpc.aio.Channel] = None,
        reconnect_timeout: float = 60.0,
        token: Optional[str] = None,
    ) -> None:
        if channel is None:
            interceptors = async_bearer_token(token) if token is not None else None
            options = channel_options(target)
            if credentials is None:
                channel = grpc.aio.insecure_channel(
                    target, options=options, interceptors=interceptors
                )
            else:
                channel = grpc.aio.secure_channel(
                    target, credentials, options=options, interceptors=interceptors
                )
        elif token is not None:
            raise ValueError(
                "token with channel: pass interceptors=approvald.credentials."
                "async_bearer_token(token) to your channel instead"
            )
        self._channel = channel
        self._stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        self.agent_id = agent_id
        self.reconnect_timeout = reconnect_timeout

    async def request(
        self,
        approval_type: str,
        context: Optional[Mapping[str, Any]] = None,
        *,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[Timeout] = None,
        idempotency_key: Optional[str] = None,
        wait: Optional[float] = None,
    ) -> Approval:
        """See `ApprovalClient.request`."""
        key = idempotency_key or str(uuid.uuid4())
        message = pb.RequestApprovalRequest(
            **creation_fields(approval_type, self.agent_id, context, labels, timeout, key)
        )
        response = await self._reattaching(
            lambda remaining: self._stub.RequestApproval(message, timeout=remaining), wait, key
        )
        return Approval.from_proto(response.approval)

    async def create(
        self,
        approval_type: str,
        context: Optional[Mapping[str, Any]] = None,
        *,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[Timeout] = None,
        idempotency_key: Optional[str] = None,
    ) -> Approval:
        key = idempotency_key or str(uuid.uuid4())  # always one: see ApprovalClient.create
        message = pb.CreateApprovalRequest(
            **creation_fields(approval_type, self.agent_id, context, labels, timeout, key)
        )
        return Approval.from_proto((await self._unary(self._stub.CreateApproval(message))).approval)

    async def await_(self, approval_id: str, *, wait: Optional[float] = None) -> Approval:
        message = pb.AwaitApprovalRequest(id=approval_id)
        response = await self._reattaching(
            lambda remaining: self._stub.AwaitApproval(message, timeout=remaining), wait, ""
        )
        return Approval.from_proto(response.approval)

    async def respond(
        self,
        approval_id: str,
        approved: bool,
        *,
        responder: str,
        reason: str = "",
        expected_context_digest: str = "",
    ) -> Approval:
        decision = pb.DECISION_APPROVE if approved else pb.DECISION_REJECT
        message = pb.RespondRequest(
            id=approval_id,
            decision=decision,
            reason=reason,
            responder=responder,
            expected_context_digest=expected_context_digest,
        )
        return Approval.from_proto((await self._unary(self._stub.Respond(message))).approval)

    async def approve(
        self,
        approval_id: str,
        *,
        responder: str,
        reason: str = "",
        expected_context_digest: str = "",
    ) -> Approval:
        return await self.respond(
            approval_id,
            True,
            responder=responder,
            reason=reason,
            expected_context_digest=expected_context_digest,
        )

    async def reject(
        self,
        approval_id: str,
        *,
        responder: str,
        reason: str = "",
        expected_context_digest: str = "",
    ) -> Approval:
        return await self.respond(
            approval_id,
            False,
            responder=responder,
            reason=reason,
            expected_context_digest=expected_context_digest,
        )

    async def watch_pending(
        self,
        *,
        approval_types: Optional[Iterable[str]] = None,
        agent_id: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        cursor: Optional[str] = None,
    ) -> AsyncIterator[WatchEvent]:
        """See `ApprovalClient.watch_pending`; leave the `async for` to stop."""
        message = pb.WatchPendingRequest(
            approval_types=list(approval_types or []),
            agent_id=agent_id or "",
            labels=dict(labels or {}),
        )
        cursor = cursor or ""
        reconnect = _ReconnectBudget(self.reconnect_timeout, None)
        yielded_without_cursor = False
        while True:
            message.cursor = cursor
            call = self._stub.WatchPending(message)
            received = False
            error: Optional[grpc.aio.AioRpcError] = None
            try:
                async for response in call:
                    received = True
                    event = WatchEvent.from_proto(response)
                    if event.cursor:
                        cursor = event.cursor
                    else:
                        yielded_without_cursor = True
                    yield event
            except grpc.aio.AioRpcError as failed:
                error = failed
            finally:
                call.cancel()
            code = error.code() if error is not None else grpc.StatusCode.UNAVAILABLE
            if code == grpc.StatusCode.OUT_OF_RANGE or (
                code == grpc.StatusCode.UNAVAILABLE and not cursor and yielded_without_cursor
            ):
                cursor = ""
                yielded_without_cursor = False
                yield WatchEvent(kind="reset", approval=None, cursor="")
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    continue
            elif error is not None:
                raise from_rpc_error(error) from None
            reconnect.lost(attached=received)
            await self._wait_until_connected(reconnect)

    async def get(self, approval_id: str) -> Approval:
        message = pb.GetApprovalRequest(id=approval_id)
        return Approval.from_proto((await self._unary(self._stub.GetApproval(message))).approval)

    async def list(
        self,
        *,
        statuses: Optional[Iterable[Status]] = None,
        approval_types: Optional[Iterable[str]] = None,
        agent_id: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        page_size: int = 0,
    ) -> AsyncIterator[Approval]:
        message = pb.ListApprovalsRequest(
            statuses=[Status(s).to_proto() for s in statuses or []],
            approval_types=list(approval_types or []),
            agent_id=agent_id or "",
            labels=dict(labels or {}),
            page_size=page_size,
        )
        while True:
            page = await self._unary(self._stub.ListApprovals(message))
            for approval in page.approvals:
                yield Approval.from_proto(approval)
            if not page.next_page_token:
                return
            message.page_token = page.next_page_token

    async def cancel(self, approval_id: str, reason: str = "") -> Approval:
        message = pb.CancelApprovalRequest(id=approval_id, reason=reason)
        return Approval.from_proto((await self._unary(self._stub.CancelApproval(message))).approval)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncApprovalClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

    async def _reattaching(
        self, call: Callable[[Optional[float]], Awaitable[T]], wait: Optional[float], key: str
    ) -> T:
        """See `ApprovalClient._reattaching`."""
        wait_ends = None if wait is None else time.monotonic() + wait
        reconnect = _ReconnectBudget(self.reconnect_timeout, wait_ends)
        while True:
            started = time.monotonic()
            remaining = None if wait_ends is None else max(0.0, wait_ends - started)
            try:
                return await call(remaining)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise from_rpc_error(error, key) from None
                reconnect.lost(attached=time.monotonic() - started >= ATTACHED_AFTER_SECONDS)
                await self._wait_until_connected(reconnect)

    async def _wait_until_connected(self, reconnect: _ReconnectBudget) -> None:
        await asyncio.sleep(reconnect.next_pause())
        try:
            await asyncio.wait_for(self._channel.channel_ready(), reconnect.remaining())
        except asyncio.TimeoutError:
            raise Unavailable(
                grpc.StatusCode.UNAVAILABLE,
                f"no connection to approvald within {self.reconnect_timeout}s",
            ) from None


class AsyncApprovalGate:
    """`ApprovalGate` for asyncio: the same methods, awaited."""

    DEFAULT_TIMEOUT = ApprovalGate.DEFAULT_TIMEOUT

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        agent_id: Optional[str] = None,
        *,
        client: Optional[AsyncApprovalClient] = None,
        token: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
    ) -> None:
        self.client = client or AsyncApprovalClient(
            target, agent_id=agent_id, token=token, credentials=credentials
        )
        self.agent_id = agent_id if agent_id is not None else self.client.agent_id

    async def request_approval(
        self,
        approval_type: str,
        context: Optional[dict[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> ApprovalResponse:
        approval = await self.client.request(
            approval_type,
            context or {},
            timeout=timeout if timeout is not None else self.DEFAULT_TIMEOUT,
        )
        return ApprovalResponse.from_approval(approval)

    async def respond_to_approval(
        self, request_id: str, approved: bool, responder: str, reason: str = ""
    ) -> bool:
        try:
            await self.client.respond(request_id, approved, responder=responder, reason=reason)
            return True
        except (AlreadyDecided, NotFound):
            return False

    async def get_pending_approvals(
        self, approval_type: Optional[str] = None
    ) -> list[ApprovalRequest]:
        pending = [
            a
            async for a in self.client.list(
                statuses=[Status.PENDING],
                approval_types=[approval_type] if approval_type else None,
            )
        ]
        return [ApprovalRequest.from_approval(a) for a in reversed(pending)]

    async def close(self) -> None:
        await self.client.close()
