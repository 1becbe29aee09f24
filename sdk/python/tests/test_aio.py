"""The asyncio variants."""

import asyncio

import pytest

from approvald import AlreadyDecided, Status
from approvald.aio import AsyncApprovalClient, AsyncApprovalGate


async def test_async_gate_blocks_until_a_human_decides(addr_a, addr_b, kind):
    agent = AsyncApprovalGate(addr_a, agent_id="async-agent")
    human = AsyncApprovalGate(addr_b)
    waiting = asyncio.create_task(agent.request_approval(kind, {"n": 1}, timeout=60))
    for _ in range(400):
        pending = await human.get_pending_approvals(kind)
        if pending:
            break
        await asyncio.sleep(0.05)
    assert [p.context for p in pending] == [{"n": 1}]
    assert await human.respond_to_approval(pending[0].request_id, False, "bob", "too risky")
    assert not await human.respond_to_approval(pending[0].request_id, True, "eve", "")
    response = await asyncio.wait_for(waiting, 30)
    assert (response.approved, response.responder, response.reason) == (False, "bob", "too risky")
    await agent.close()
    await human.close()


async def test_async_client_watches_and_resumes_by_cursor(addr_a, addr_b, kind):
    async with AsyncApprovalClient(addr_a) as client, AsyncApprovalClient(addr_b) as other:
        first = await client.create(kind)
        events = client.watch_pending(approval_types=[kind])
        assert (await events.__anext__()).approval.id == first.id
        synced = await events.__anext__()
        assert synced.kind == "synced"
        await events.aclose()

        await other.reject(first.id, responder="bob")
        with pytest.raises(AlreadyDecided):
            await other.approve(first.id, responder="eve")
        resumed = other.watch_pending(approval_types=[kind], cursor=synced.cursor)
        missed = await resumed.__anext__()
        assert (missed.kind, missed.approval.status) == ("resolved", Status.REJECTED)
        await resumed.aclose()
        final = await client.await_(first.id)
        assert final.status is Status.REJECTED
        assert [a.id async for a in client.list(approval_types=[kind])] == [first.id]
