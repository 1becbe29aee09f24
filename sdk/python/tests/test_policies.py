"""Policies seen from Python: votes (M of N, veto), the `updated` watch
event, the context digest guard, and on_timeout deciding what the gate
returns. One approvald of the test's own, reading a policy file."""

import threading
import uuid

import pytest

from approvald import ApprovalClient, ApprovalGate, OnTimeout, Status, VoteRefused

from conftest import Replica

POLICIES = """
[[policies]]
approval_types = ["py-vote:*"]
required_approvals = 2

[[policies]]
approval_types = ["py-quiet:*"]
on_timeout = "approve"
default_timeout = "500ms"
"""


@pytest.fixture(scope="module")
def voting_server(tmp_path_factory):
    config = tmp_path_factory.mktemp("policies") / "approvald.toml"
    config.write_text(POLICIES)
    replica = Replica(f"py-policies-{uuid.uuid4().hex[:8]}", "--config", str(config))
    yield replica.addr
    replica.shut_down()


def test_two_votes_approve_one_reject_vetoes_and_a_vote_cannot_change(voting_server):
    with ApprovalClient(voting_server, agent_id="py-bot") as c:
        created = c.create("py-vote:deploy", context={"version": "2.4.1"})
        assert created.required_approvals == 2
        one = c.approve(
            created.id,
            responder="alice",
            reason="diff read",
            expected_context_digest=created.context_digest,
        )
        assert one.status is Status.PENDING
        assert [(v.voter, v.approve) for v in one.votes] == [("alice", True)]
        with pytest.raises(VoteRefused) as changed:
            c.reject(created.id, responder="alice", reason="second thoughts")
        assert changed.value.reason == "ALREADY_VOTED"
        done = c.approve(created.id, responder="bob")
        assert done.status is Status.APPROVED and done.approved
        assert done.decided_by == "bob"
        assert [v.voter for v in done.votes] == ["alice", "bob"]

        vetoed = c.create("py-vote:drop")
        c.approve(vetoed.id, responder="alice")
        final = c.reject(vetoed.id, responder="carol", reason="not today")
        assert final.status is Status.REJECTED and not final.approved
        assert final.decided_by == "carol"


def test_a_stale_context_digest_is_refused_and_nothing_changes(voting_server):
    with ApprovalClient(voting_server, agent_id="py-bot") as c:
        created = c.create("py-vote:digest", context={"rows": 3})
        with pytest.raises(VoteRefused) as refused:
            c.approve(
                created.id,
                responder="alice",
                expected_context_digest="sha256:" + "0" * 64,
            )
        assert refused.value.reason == "CONTEXT_DIGEST_MISMATCH"
        assert c.get(created.id).votes == ()


def test_each_vote_is_an_updated_watch_event(voting_server):
    with ApprovalClient(voting_server, agent_id="py-bot") as c:
        kind = f"py-vote:{uuid.uuid4().hex[:8]}"
        events = c.watch_pending(approval_types=[kind])
        seen = []
        synced = threading.Event()

        def read():
            for e in events:
                seen.append(e)
                if e.kind == "synced":
                    synced.set()
                if e.kind == "resolved":
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert synced.wait(10)
        created = c.create(kind)
        c.approve(created.id, responder="alice")
        c.approve(created.id, responder="bob")
        reader.join(10)
        events.cancel()
        kinds = [e.kind for e in seen]
        assert kinds == ["synced", "added", "updated", "resolved"], kinds
        assert [v.voter for v in seen[2].approval.votes] == ["alice"]
        assert seen[2].cursor


def test_an_approve_on_timeout_policy_lets_the_gate_proceed_at_the_deadline(voting_server):
    with ApprovalClient(voting_server, agent_id="py-bot") as c:
        approval = c.request("py-quiet:canary")
        assert approval.status is Status.EXPIRED
        assert approval.on_timeout is OnTimeout.APPROVE
        assert approval.approved, "nobody objected: the gate proceeds"
        assert 'policy "py-quiet:*"' in approval.reason
    gate = ApprovalGate(voting_server, agent_id="py-bot")
    try:
        response = gate.request_approval("py-quiet:canary", context={}, timeout=0.5)
        assert response.approved
    finally:
        gate.close()
