"""The full client: every RPC, errors, watch resume and re-attach."""

import os
import threading
import uuid

import pytest
from conftest import Replica, eventually

from approvald import (
    AlreadyDecided,
    ApprovalClient,
    InvalidArgument,
    NotFound,
    Status,
    WaitTimedOut,
)


def test_create_then_await_returns_the_decision_made_on_another_replica(client, client_b, kind):
    created = client.create(kind, {"amount": 12.5, "items": ["a", "b"]}, labels={"team": "x"})
    assert created.status is Status.PENDING
    assert created.agent_id == "pytest-agent"
    assert created.context == {"amount": 12.5, "items": ["a", "b"]}
    assert created.labels == {"team": "x"}

    client_b.approve(created.id, responder="alice", reason="ok")
    final = client.await_(created.id)
    assert final.approved and final.status is Status.APPROVED
    assert (final.decided_by, final.reason) == ("alice", "ok")
    assert final.decided_at is not None
    assert client_b.get(created.id) == final


def test_create_without_key_or_timeout_sends_a_made_up_key_and_gets_the_servers_default(
    client, kind
):
    default = float(os.environ["APPROVALD_DEFAULT_TIMEOUT_SECONDS"])
    first, second = client.create(kind), client.create(kind)
    assert str(uuid.UUID(first.idempotency_key)) == first.idempotency_key
    assert first.idempotency_key != second.idempotency_key and first.id != second.id
    assert abs((first.deadline - first.created_at).total_seconds() - default) <= 1
    with pytest.raises(WaitTimedOut):
        client.request(kind, wait=0.5)  # request, too, sends no timeout of its own
    waiting = [a for a in client.list(approval_types=[kind]) if a.id not in (first.id, second.id)]
    assert abs((waiting[0].deadline - waiting[0].created_at).total_seconds() - default) <= 1


def test_a_conflicting_respond_raises_already_decided_naming_the_winner(client, client_b, kind):
    approval = client.create(kind)
    client_b.reject(approval.id, responder="bob", reason="no")
    assert client_b.reject(approval.id, responder="bob", reason="no").status is Status.REJECTED
    with pytest.raises(AlreadyDecided) as refused:
        client.approve(approval.id, responder="mallory")
    assert refused.value.status is Status.REJECTED
    assert refused.value.decided_by == "bob"
    assert refused.value.reason == "no"


def test_bad_input_raises_invalid_argument_naming_the_field(client, kind):
    with pytest.raises(InvalidArgument) as bad_type:
        client.create("")
    assert bad_type.value.field == "approval_type"
    approval = client.create(kind)
    with pytest.raises(InvalidArgument) as no_responder:
        client.approve(approval.id, responder="")
    assert no_responder.value.field == "responder"
    with pytest.raises(InvalidArgument) as bad_timeout:
        client.create(kind, timeout=0)
    assert bad_timeout.value.field == "timeout"


def test_an_unknown_id_raises_not_found(client):
    with pytest.raises(NotFound):
        client.get("0190f0e0-0000-7000-8000-000000000000")


def test_a_wait_that_ends_first_leaves_the_approval_pending_for_re_attach(client, client_b, kind):
    with pytest.raises(WaitTimedOut) as timed_out:
        client.request(kind, {"step": 1}, timeout=60, idempotency_key="deploy-42", wait=0.5)
    assert timed_out.value.idempotency_key == "deploy-42"
    pending = list(client_b.list(approval_types=[kind], statuses=[Status.PENDING]))
    assert len(pending) == 1

    client_b.approve(pending[0].id, responder="alice")
    again = client.request(kind, {"step": 1}, timeout=60, idempotency_key="deploy-42")
    assert again.id == pending[0].id
    assert again.approved


def test_cancel_makes_the_waiter_return_cancelled(client, kind):
    approval = client.create(kind, idempotency_key="cancel-me")
    cancelled = client.cancel(approval.id, reason="no longer needed")
    assert cancelled.status is Status.CANCELLED
    waited = client.request(kind, idempotency_key="cancel-me")
    assert waited.id == approval.id
    assert waited.status is Status.CANCELLED and not waited.approved


def test_list_pages_through_every_match_newest_first(client, kind):
    ids = [client.create(kind, labels={"batch": kind}).id for _ in range(5)]
    listed = [a.id for a in client.list(approval_types=[kind], page_size=2)]
    assert listed == list(reversed(ids))
    assert [a.id for a in client.list(labels={"batch": kind}, page_size=3)] == listed


def test_watch_pending_gives_snapshot_synced_live_events_and_resumes_by_cursor(
    client, client_b, kind
):
    first = client.create(kind)
    stream = client.watch_pending(approval_types=[kind])
    snapshot = next(stream)
    assert (snapshot.kind, snapshot.approval.id, snapshot.cursor) == ("added", first.id, "")
    synced = next(stream)
    assert synced.kind == "synced" and synced.cursor

    second = client.create(kind)
    live = next(stream)
    assert (live.kind, live.approval.id) == ("added", second.id)
    assert live.cursor and stream.cursor == live.cursor
    stream.close()

    # While nobody watches: first is approved. Resuming on the other replica
    # yields exactly what was missed.
    client_b.approve(first.id, responder="alice")
    resumed = client_b.watch_pending(approval_types=[kind], cursor=live.cursor)
    missed = next(resumed)
    assert (missed.kind, missed.approval.id) == ("resolved", first.id)
    assert missed.approval.status is Status.APPROVED
    client.cancel(second.id)
    after = next(resumed)
    assert (after.kind, after.approval.id) == ("resolved", second.id)
    resumed.close()


def test_a_blocked_request_re_attaches_after_its_replica_shuts_down(
    extra_replica, addr_a, client_b, kind
):
    # The agent knows two replicas; pick_first connects it to the extra one.
    agent = ApprovalClient(f"ipv4:{extra_replica.addr},{addr_a}", agent_id="survivor")
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("approval", agent.request(kind, timeout=120)),
        daemon=True,
    )
    thread.start()
    pending = eventually(lambda: list(client_b.list(approval_types=[kind])))

    extra_replica.shut_down()  # its waiters get UNAVAILABLE and re-attach on addr_a
    client_b.approve(pending[0].id, responder="alice")
    thread.join(60)
    assert not thread.is_alive()
    assert result["approval"].id == pending[0].id
    assert result["approval"].approved
    agent.close()


def test_a_watch_resumes_by_itself_on_another_replica_with_no_gap_and_no_duplicate(
    extra_replica, addr_a, client_b, kind
):
    # The watcher knows two replicas; pick_first connects it to the extra one.
    watcher = ApprovalClient(f"ipv4:{extra_replica.addr},{addr_a}", agent_id="watcher")
    before = client_b.create(kind)
    stream = watcher.watch_pending(approval_types=[kind])
    assert (next(stream).kind, next(stream).kind) == ("added", "synced")
    first = client_b.create(kind)
    live = next(stream)
    assert (live.kind, live.approval.id) == ("added", first.id)

    extra_replica.shut_down()  # the stream ends; the helper resumes on addr_a
    # Made while the watcher's replica was gone: each must arrive once.
    client_b.approve(before.id, responder="alice")
    second = client_b.create(kind)
    client_b.cancel(first.id)

    seen = [next(stream) for _ in range(3)]
    assert [(e.kind, e.approval.id) for e in seen] == [
        ("resolved", before.id),
        ("added", second.id),
        ("resolved", first.id),
    ], "resumed from its last cursor: no reset, no gap, no duplicate"
    assert all(e.cursor for e in seen)
    stream.close()
    watcher.close()


def test_a_cursor_trimmed_from_the_event_log_gives_reset_then_a_fresh_snapshot(kind):
    # A replica on a store of its own whose event log keeps only 3 events.
    small = Replica(f"trim-{uuid.uuid4().hex[:8]}", "--event-log-cap", "3")
    try:
        with ApprovalClient(small.addr, agent_id="trim") as c:
            stream = c.watch_pending(approval_types=[kind])
            assert next(stream).kind == "synced"
            kept = c.create(kind)
            live = next(stream)
            assert (live.kind, live.approval.id) == ("added", kept.id)
            stream.close()

            # While nobody watches, 160 more events push that cursor out
            # (Redis trims the stream by whole nodes of 100 entries).
            for _ in range(80):
                c.cancel(c.create(kind).id)

            resumed = c.watch_pending(approval_types=[kind], cursor=live.cursor)
            reset = next(resumed)
            assert reset.kind == "reset", reset
            # The re-sync: every pending approval, then synced.
            snapshot = next(resumed)
            assert (snapshot.kind, snapshot.approval.id) == ("added", kept.id)
            assert next(resumed).kind == "synced"
            resumed.close()
    finally:
        small.shut_down()
