"""The attune-ai style ApprovalGate, against live replicas."""

import threading

from conftest import eventually

from approvald import ApprovalGate


def _in_background(fn):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    thread.start()
    return thread, result


def test_request_approval_blocks_until_a_human_on_another_replica_approves(addr_a, addr_b, kind):
    agent = ApprovalGate(addr_a, agent_id="deployer")
    human = ApprovalGate(addr_b)
    thread, result = _in_background(
        lambda: agent.request_approval(kind, context={"version": "2.0.0"}, timeout=60)
    )
    pending = eventually(lambda: human.get_pending_approvals(kind))
    assert len(pending) == 1
    assert pending[0].agent_id == "deployer"
    assert pending[0].context == {"version": "2.0.0"}
    assert pending[0].status == "pending"
    assert pending[0].timeout_seconds == 60

    assert human.respond_to_approval(pending[0].request_id, True, "alice", "looks good")
    thread.join(30)
    response = result["value"]
    assert response.approved is True
    assert response.responder == "alice"
    assert response.reason == "looks good"
    assert response.request_id == pending[0].request_id
    assert human.get_pending_approvals(kind) == []


def test_timeout_expiry_returns_not_approved_with_the_reason(addr_a, kind):
    gate = ApprovalGate(addr_a, agent_id="deployer")
    response = gate.request_approval(kind, context={}, timeout=1)
    assert response.approved is False
    assert response.reason == "Approval timeout after 1s"  # attune-ai's wording
    assert response.responder == "system"


def test_a_conflicting_response_is_refused_and_the_first_decision_stands(addr_a, addr_b, kind):
    agent = ApprovalGate(addr_a, agent_id="deployer")
    thread, result = _in_background(lambda: agent.request_approval(kind, timeout=60))
    human = ApprovalGate(addr_b)
    request_id = eventually(lambda: human.get_pending_approvals(kind))[0].request_id

    assert human.respond_to_approval(request_id, False, "bob", "not today")
    assert human.respond_to_approval(request_id, False, "bob", "not today")  # identical retry
    assert not human.respond_to_approval(request_id, True, "mallory", "overwrite")
    thread.join(30)
    assert result["value"].approved is False
    assert result["value"].responder == "bob"


def test_a_response_to_an_unknown_id_is_refused(addr_b):
    human = ApprovalGate(addr_b)
    assert not human.respond_to_approval("0190f0e0-0000-7000-8000-000000000000", True, "alice")
