"""Differential test: the same scenarios on attune-ai 16.4.0's ApprovalGate
(attune.telemetry.approval_gates, on a real redis-server this module starts)
and on ours (a live approvald), with the observable results compared.

Where the results differ on purpose (README, "Switching from attune-ai"),
the test asserts both sides' values, so a change on either side shows."""

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
from attune.telemetry import approval_gates as attune
from conftest import _env, _free_port, eventually, wait_serving

import approvald
from approvald import gate as ours


class RedisMemory:
    """The memory shape attune's gate uses: a Redis client in `_client`
    (no `retrieve`, so the gate reads and writes Redis directly)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client


class RedisServer:
    def __init__(self) -> None:
        assert shutil.which("redis-server"), "redis-server is not installed"
        self.port = _free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir.name],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}"
        client = redis.Redis.from_url(self.url)
        eventually(lambda: _pings(client), within=20)

    def memory(self) -> RedisMemory:
        return RedisMemory(redis.Redis.from_url(self.url, socket_connect_timeout=2))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@dataclass
class Side:
    """One implementation: its module, and a memory for its constructor."""

    name: str
    module: Any
    memory: Any

    def gate(self, agent_id=None):
        return self.module.ApprovalGate(self.memory, agent_id)


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def sides(redis_server, addr_a, monkeypatch):
    """attune on Redis; ours on the suite's approvald (found through
    APPROVAL_SERVER: the programs are unchanged but for the import)."""
    monkeypatch.setenv("APPROVAL_SERVER", addr_a)
    return [Side("attune", attune, redis_server.memory()), Side("ours", ours, redis_server.memory())]


def _observe_both(sides, scenario, *args):
    """scenario(side, *args) on each side: {name: observation}."""
    return {side.name: scenario(side, *args) for side in sides}


def _in_background(fn):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    thread.start()
    return thread, result


def _types(value):
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


# -- construction and attributes --------------------------------------------


def _construction(side):
    positional = side.module.ApprovalGate(side.memory, "wf")
    keywords = side.module.ApprovalGate(memory=side.memory, agent_id="wf")
    bare = side.module.ApprovalGate()
    return dict(
        memory_kept=positional.memory is side.memory and keywords.memory is side.memory,
        agent_id=(positional.agent_id, keywords.agent_id, bare.agent_id),
        defaults=(positional.DEFAULT_TIMEOUT, positional.POLL_INTERVAL),
        cleared=positional.clear_expired_requests(),
    )


def test_construction_takes_attunes_arguments_and_keeps_its_attributes(sides):
    seen = _observe_both(sides, _construction)
    assert seen["ours"] == seen["attune"]
    assert seen["ours"]["agent_id"] == ("wf", "wf", None)


def test_memory_is_ignored_with_one_warning_naming_where_the_gate_connects(sides, caplog):
    mine = sides[1]
    with caplog.at_level("WARNING", logger="approvald.gate"):
        mine.gate("wf")
    warnings = [r.getMessage() for r in caplog.records if r.name == "approvald.gate"]
    assert len(warnings) == 1
    assert "ignores memory" in warnings[0] and "$APPROVAL_SERVER" in warnings[0]


# -- the decision flow ------------------------------------------------------

CONTEXT = {
    "version": "2.0.0",
    "replicas": 60,
    "ids": [1, 2],
    "ratio": 0.5,
    "nested": {"n": 3, "ok": True, "none": None, "tuple": (1, "a")},
}


def _decision(side, kind, approved):
    agent, human = side.gate("deployer"), side.gate()
    thread, result = _in_background(lambda: agent.request_approval(kind, CONTEXT, timeout=60))
    pending = eventually(lambda: human.get_pending_approvals(kind))
    request = pending[0]
    seen = dict(
        listed=len(pending),
        approval_type=request.approval_type,
        agent_id=request.agent_id,
        context=request.context,
        context_types=_types(request.context),
        status=request.status,
        timeout_seconds=request.timeout_seconds,
        aware=request.timestamp.tzinfo is not None,
        request_keys=list(request.to_dict()),
        in_full_listing=request.request_id in [r.request_id for r in human.get_pending_approvals()],
        responded=human.respond_to_approval(request.request_id, approved, "alice", "checked"),
    )
    thread.join(30)
    response = result["value"]
    seen.update(
        approved=response.approved,
        responder=response.responder,
        reason=response.reason,
        same_id=response.request_id == request.request_id,
        response_aware=response.timestamp.tzinfo is not None,
        response_keys=list(response.to_dict()),
        pending_after=human.get_pending_approvals(kind),
        key_order=list(request.context),
    )
    return seen


@pytest.mark.parametrize("approved", [True, False], ids=["approve", "reject"])
def test_a_decision_gives_the_same_listing_and_result(sides, kind, approved):
    seen = _observe_both(sides, _decision, kind, approved)
    # Documented: a Struct is a map, its keys come back sorted (attune: as sent).
    assert seen["attune"].pop("key_order") == list(CONTEXT)
    assert seen["ours"].pop("key_order") == sorted(CONTEXT)
    assert seen["ours"] == seen["attune"]
    assert seen["ours"]["context_types"]["replicas"] == "int"
    assert (seen["ours"]["approved"], seen["ours"]["responder"]) == (approved, "alice")


# -- timeouts ---------------------------------------------------------------


def _timeout(side, kind, timeout):
    gate = side.gate("deployer")
    started = time.monotonic()
    response = gate.request_approval(kind, {"n": 1}, timeout=timeout)
    return dict(
        approved=response.approved,
        responder=response.responder,
        reason=response.reason,
        quick=time.monotonic() - started < max(timeout, 0) + 3,
        pending_after=gate.get_pending_approvals(kind),
    )


@pytest.mark.parametrize("timeout", [1, 1.5, 0, -1])
def test_no_decision_in_time_is_a_rejection_with_attunes_timeout_reason(sides, kind, timeout):
    seen = _observe_both(sides, _timeout, kind, timeout)
    assert seen["ours"] == seen["attune"]
    assert seen["ours"]["reason"] == f"Approval timeout after {timeout}s"


# -- inputs attune accepted -------------------------------------------------


def _spaced_types(side, suffix):
    spaced, underscored = f"deploy to production {suffix}", f"deploy_to_production_{suffix}"
    agent, human = side.gate("deployer"), side.gate()
    waits = [_in_background(lambda t=t: agent.request_approval(t, {}, timeout=60))
             for t in (spaced, underscored)]
    eventually(lambda: len(human.get_pending_approvals(spaced))
               + len(human.get_pending_approvals(underscored)) == 2)
    seen = dict(
        spaced=[r.approval_type for r in human.get_pending_approvals(spaced)],
        underscored=[r.approval_type for r in human.get_pending_approvals(underscored)],
    )
    for request in human.get_pending_approvals(spaced) + human.get_pending_approvals(underscored):
        human.respond_to_approval(request.request_id, True, "alice")
    results = []
    for thread, result in waits:
        thread.join(30)
        results.append(result["value"].approved)
    seen["results"] = results
    return seen


def test_an_approval_type_with_spaces_works_and_stays_distinct(sides):
    suffix = uuid.uuid4().hex[:8]
    seen = _observe_both(sides, _spaced_types, suffix)
    assert seen["ours"] == seen["attune"]
    assert seen["ours"]["spaced"] == [f"deploy to production {suffix}"]
    assert seen["ours"]["results"] == [True, True]


def _unserializable_context(side, kind):
    response = side.gate("deployer").request_approval(
        kind, {"when": datetime.now(timezone.utc)}, timeout=30
    )
    return dict(
        approved=response.approved,
        responder=response.responder,
        reason=response.reason,
        pending=side.gate().get_pending_approvals(kind),
        request_id=response.request_id,
    )


def test_a_context_that_is_not_json_is_a_rejection_not_an_exception(sides, kind):
    seen = _observe_both(sides, _unserializable_context, kind)
    # Documented: nothing was stored, so ours has no request id to give.
    assert seen["attune"].pop("request_id").startswith("approval_")
    assert seen["ours"].pop("request_id") == ""
    assert seen["ours"] == seen["attune"]
    assert seen["ours"]["reason"].startswith("Storage error: Object of type datetime")


# -- responses attune and ours answer differently (documented) ---------------


def _responses_to_odd_ids(side):
    human = side.gate()
    return [human.respond_to_approval(i, True, "alice") for i in ("approval_abc123", "")]


def test_a_response_to_an_unknown_or_malformed_id_returns_a_bool(sides):
    seen = _observe_both(sides, _responses_to_odd_ids)
    assert seen["attune"] == [True, True]  # attune stores a response for any id
    assert seen["ours"] == [False, False]  # ours: refused, nothing to decide


def _conflicting_decisions(side, kind):
    agent, human = side.gate("deployer"), side.gate()
    thread, result = _in_background(lambda: agent.request_approval(kind, {}, timeout=60))
    request_id = eventually(lambda: human.get_pending_approvals(kind))[0].request_id
    answers = [human.respond_to_approval(request_id, False, "bob", "no"),
               human.respond_to_approval(request_id, True, "mallory", "yes")]
    thread.join(30)
    return answers


def test_a_conflicting_decision(sides, kind):
    seen = _observe_both(sides, _conflicting_decisions, kind)
    assert seen["attune"] == [True, True]  # the last write wins in Redis
    assert seen["ours"] == [True, False]  # the first decision wins


# -- serialization ------------------------------------------------------------


def _serialization(side):
    naive = datetime(2026, 1, 2, 3, 4, 5)
    aware = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    request = {"request_id": "r1", "approval_type": "deploy", "agent_id": "wf",
               "context": {"a": [1, 2]}, "timeout_seconds": 60, "status": "pending"}
    response = {"request_id": "r1", "approved": True, "responder": "alice", "reason": "ok"}
    seen = {}
    for label, stamp in [("naive", naive), ("aware", aware), ("text", "2026-01-02T03:04:05"),
                         ("zulu", "2026-01-02T03:04:05Z"), ("offset", "2026-01-02T05:04:05+02:00")]:
        seen[f"request {label}"] = side.module.ApprovalRequest.from_dict(
            {**request, "timestamp": stamp}).to_dict()
        seen[f"response {label}"] = side.module.ApprovalResponse.from_dict(
            {**response, "timestamp": stamp}).to_dict()
    missing = side.module.ApprovalRequest.from_dict({"request_id": "r", "approval_type": "t",
                                                     "agent_id": "a"})
    seen["request defaults"] = (missing.context, missing.timeout_seconds, missing.status,
                                missing.timestamp.tzinfo is not None)
    bare = side.module.ApprovalResponse.from_dict({"request_id": "r"})
    seen["response defaults"] = (bare.approved, bare.responder, bare.reason,
                                 bare.timestamp.tzinfo is not None)
    built = side.module.ApprovalResponse("r", False, "bob", "no", aware)
    seen["positional response"] = built.to_dict()
    try:
        side.module.ApprovalRequest.from_dict({"approval_type": "t"})
        seen["no id"] = "accepted"
    except KeyError as error:
        seen["no id"] = f"KeyError {error}"
    return seen


def test_to_dict_and_from_dict_match_attunes(sides):
    seen = _observe_both(sides, _serialization)
    assert seen["ours"] == seen["attune"]


# -- backend trouble: never an exception ------------------------------------


def _unreachable(side, make_gate, needle, kind):
    gate = make_gate(side)
    started = time.monotonic()
    response = gate.request_approval(kind, {}, timeout=2)
    return dict(
        approved=response.approved,
        responder=response.responder,
        names_it=needle in response.reason,
        within_bound=time.monotonic() - started < 2 + ours.GRACE_SECONDS + 3,
        responded=gate.respond_to_approval("0190f0e0-0000-7000-8000-000000000000", True, "x"),
        pending=gate.get_pending_approvals(),
        reason=response.reason,
    )


def test_an_unreachable_backend_is_a_rejection_false_and_empty(sides, kind):
    dead = f"127.0.0.1:{_free_port()}"  # nothing listens there

    def make_gate(side):
        if side.name == "attune":
            host, port = dead.split(":")
            return attune.ApprovalGate(RedisMemory(redis.Redis(host=host, port=int(port))), "wf")
        return ours.ApprovalGate(None, "wf", target=dead)

    seen = _observe_both(sides, _unreachable, make_gate, dead, kind)
    reasons = {name: seen[name].pop("reason") for name in seen}
    assert seen["ours"] == seen["attune"], reasons
    assert seen["ours"] == dict(approved=False, responder="system", names_it=True,
                                within_bound=True, responded=False, pending=[])


class ApprovaldOn:
    """An approvald of this test's own, on the given Redis."""

    def __init__(self, redis_url: str) -> None:
        self.addr = f"127.0.0.1:{_free_port()}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [_env("APPROVALD_BIN"), "--listen", self.addr,
             "--metrics-listen", f"127.0.0.1:{_free_port()}",
             "--redis-url", redis_url, "--redis-prefix", f"diff-{uuid.uuid4().hex[:8]}",
             "--shutdown-grace", "1s"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_serving(self.addr)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def test_redis_down_behind_a_running_service_is_a_rejection_naming_redis(kind):
    own_redis = RedisServer()
    service = ApprovaldOn(own_redis.url)
    try:
        memory = own_redis.memory()
        both = [Side("attune", attune, memory), Side("ours", ours, memory)]
        own_redis.stop()

        def make_gate(side):
            if side.name == "attune":
                return attune.ApprovalGate(memory, "wf")
            return ours.ApprovalGate(memory, "wf", target=service.addr)

        seen = _observe_both(both, _unreachable, make_gate, "", kind)
        reasons = {name: seen[name].pop("reason") for name in seen}
        assert seen["ours"] == seen["attune"], reasons
        assert seen["ours"]["approved"] is False and seen["ours"]["within_bound"], reasons
        assert "Redis" in reasons["ours"] and service.addr in reasons["ours"], reasons
    finally:
        service.stop()
        own_redis.stop()


def test_the_full_client_still_raises_typed_errors():
    with approvald.ApprovalClient(f"127.0.0.1:{_free_port()}", reconnect_timeout=1) as client:
        with pytest.raises(approvald.Unavailable):
            client.request("deploy", {}, wait=2)
