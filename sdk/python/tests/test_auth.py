"""Tokens and TLS, against an approvald of its own with authentication on
(conftest.SecuredServer): the principal behind the token is the requester and
the decider, whatever the call says; refusals are typed errors."""

import asyncio
import threading

import grpc
import pytest
from conftest import eventually

from approvald import (
    ApprovalClient,
    ApprovalGate,
    PermissionDenied,
    Status,
    Unauthenticated,
    tls_credentials,
)
from approvald.aio import AsyncApprovalClient, AsyncApprovalGate


def test_the_requester_is_the_tokens_principal_and_the_decider_the_approvers(
    secured, deploy_kind
):
    with ApprovalClient(secured.addr, agent_id="claims-to-be-alice", token=secured.bot_token) as bot, \
            ApprovalClient(secured.addr, token=secured.alice_token) as alice:
        created = bot.create(deploy_kind, {"version": "2.0"})
        assert created.requester == "release-bot"

        decided = alice.approve(created.id, responder="someone-else", reason="checked")
        assert (decided.status, decided.decided_by) == (Status.APPROVED, "alice")
        assert bot.get(created.id).decided_by == "alice"


def test_the_gate_sends_its_token_and_reports_the_approvers_principal(secured, deploy_kind):
    agent = ApprovalGate(secured.addr, agent_id="release-bot", token=secured.bot_token)
    human = ApprovalGate(secured.addr, token=secured.alice_token)
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("r", agent.request_approval(deploy_kind, {}, 60)),
        daemon=True,
    )
    thread.start()
    pending = eventually(lambda: human.get_pending_approvals(deploy_kind))
    assert human.respond_to_approval(pending[0].request_id, True, "typed-name", "ok")
    thread.join(30)
    assert (result["r"].approved, result["r"].responder) == (True, "alice")
    agent.close()
    human.close()


def test_without_a_token_every_call_is_unauthenticated(secured, deploy_kind):
    with ApprovalClient(secured.addr) as anonymous:
        with pytest.raises(Unauthenticated) as refused:
            anonymous.create(deploy_kind)
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(Unauthenticated):
            anonymous.request(deploy_kind, wait=5)
        with pytest.raises(Unauthenticated):
            next(anonymous.watch_pending())
    with ApprovalClient(secured.addr, token="not-a-known-token") as stranger:
        with pytest.raises(Unauthenticated):
            list(stranger.list())


def test_a_requester_cannot_approve_its_own_request(secured, deploy_kind):
    with ApprovalClient(secured.addr, token=secured.carol_token) as carol, \
            ApprovalClient(secured.addr, token=secured.alice_token) as alice:
        own = carol.create(deploy_kind)
        with pytest.raises(PermissionDenied) as refused:
            carol.approve(own.id, responder="carol")
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert alice.get(own.id).status is Status.PENDING
        # Somebody else may.
        assert alice.approve(own.id, responder="alice").decided_by == "alice"


def test_a_token_is_refused_when_empty():
    with pytest.raises(ValueError):
        ApprovalClient("127.0.0.1:1", token="")


async def test_the_asyncio_client_and_gate_send_their_token(secured, deploy_kind):
    async with AsyncApprovalClient(secured.addr, token=secured.bot_token) as bot, \
            AsyncApprovalClient(secured.addr, token=secured.alice_token) as alice, \
            AsyncApprovalClient(secured.addr) as anonymous:
        created = await bot.create(deploy_kind)
        assert created.requester == "release-bot"
        with pytest.raises(Unauthenticated):
            await anonymous.get(created.id)
        async for event in alice.watch_pending(approval_types=[deploy_kind]):
            assert event.kind == "added" and event.approval.id == created.id
            break
        decided = await alice.approve(created.id, responder="ignored")
        assert decided.decided_by == "alice"
        assert (await bot.await_(created.id, wait=10)).decided_by == "alice"

    gate = AsyncApprovalGate(secured.addr, token=secured.carol_token)
    waiting = asyncio.create_task(gate.request_approval(deploy_kind, {}, timeout=60))
    human = AsyncApprovalGate(secured.addr, token=secured.alice_token)
    for _ in range(400):
        pending = await human.get_pending_approvals(deploy_kind)
        if pending:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(PermissionDenied):
        await gate.respond_to_approval(pending[0].request_id, True, "carol")
    assert await human.respond_to_approval(pending[0].request_id, False, "x", "not now")
    response = await asyncio.wait_for(waiting, 30)
    assert (response.approved, response.responder, response.reason) == (False, "alice", "not now")
    await gate.close()
    await human.close()


def test_over_tls_with_the_servers_certificate_as_ca(secured_tls, deploy_kind):
    credentials = tls_credentials(ca_cert=secured_tls.ca_cert)
    with ApprovalClient(secured_tls.addr, credentials=credentials, token=secured_tls.bot_token) as bot:
        created = bot.create(deploy_kind)
        assert created.requester == "release-bot"
    gate = ApprovalGate(
        secured_tls.addr, token=secured_tls.alice_token, credentials=tls_credentials(secured_tls.ca_cert)
    )
    assert gate.respond_to_approval(created.id, True, "alice", "over TLS")
    gate.close()
    with ApprovalClient(secured_tls.addr, credentials=credentials) as anonymous:
        with pytest.raises(Unauthenticated):
            anonymous.get(created.id)


async def test_asyncio_over_tls(secured_tls, deploy_kind):
    credentials = tls_credentials(ca_cert=secured_tls.ca_cert)
    async with AsyncApprovalClient(
        secured_tls.addr, credentials=credentials, token=secured_tls.carol_token
    ) as carol:
        created = await carol.create(deploy_kind)
        assert created.requester == "carol"
        with pytest.raises(PermissionDenied):
            await carol.approve(created.id, responder="carol")


def test_mutual_tls_needs_both_certificate_and_key(secured_tls):
    with pytest.raises(ValueError):
        tls_credentials(ca_cert=secured_tls.ca_cert, client_cert=secured_tls.ca_cert)


def test_mutual_tls_makes_the_client_certificates_cn_the_principal(secured_tls, deploy_kind):
    credentials = tls_credentials(
        ca_cert=secured_tls.ca_cert,
        client_cert=secured_tls.client_cert,
        client_key=secured_tls.client_key,
    )
    with ApprovalClient(secured_tls.addr, credentials=credentials) as runner:
        assert runner.create(deploy_kind).requester == "ci-runner"
