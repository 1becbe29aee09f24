"""Drives attune-ai's ApprovalGate (the Redis-polling reference design) for
approvald-bench, on the bench's Redis. Prints one JSON object on stdout.

    python gate_driver.py decision --redis-url URL --waiters N --rounds R --idle-seconds S [--answer at-once|random]
    python gate_driver.py seed --redis-url URL --pending N
    python gate_driver.py list --redis-url URL --calls K --expect N

decision: N threads each call ApprovalGate.request_approval (which stores
the request and polls Redis once a second for the response, as shipped).
A console lists the pending requests with get_pending_approvals and answers
each, one at a time, with respond_to_approval. A decision's latency runs from
just before respond_to_approval is called to its waiter's request_approval
returning. While all N wait and nothing happens, Redis commands per second
are read from INFO commandstats.

--answer at-once (the default) answers every request as soon as all have
appeared: each waiter is then between two of its polls, so its latency is
whatever remains of its 1 s poll interval (the worst case, close to a whole
interval when the requests appeared together). --answer random answers each
request at a uniformly random moment within one poll interval, as a human
who answers whenever they happen to look would: the expected wait is then
half an interval.

seed: stores N pending requests exactly as request_approval does (the same
key, TTL and JSON), without a thread blocked on each.

list: times get_pending_approvals (SCAN of the keyspace, then MGET).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import threading
import time
from datetime import datetime, timezone
from uuid import uuid4

import redis
from attune.telemetry.approval_gates import ApprovalGate, ApprovalRequest

APPROVAL_TYPE = "bench_decision"
LISTING_TYPE = "bench_listing"
TIMEOUT_S = 600.0
# ApprovalGate.request_approval polls Redis once a second (as shipped).
POLL_INTERVAL_S = 1.0


class RedisMemory:
    """The memory backend shape ApprovalGate uses: a Redis client in `_client`
    (with no `retrieve`, so the gate reads and writes Redis directly)."""

    def __init__(self, client: redis.Redis):
        self._client = client


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def decision(args) -> dict:
    # One connection per waiting thread at most, as if each waiting workflow
    # were its own process with its own client.
    client = redis.Redis.from_url(args.redis_url, max_connections=args.waiters + 16)
    memory = RedisMemory(client)
    console = ApprovalGate(memory=memory)
    latencies = []
    idle = None
    for _ in range(args.rounds):
        answered: dict[str, int] = {}

        def wait(i: int) -> None:
            gate = ApprovalGate(memory=memory, agent_id=f"bench-agent-{i}")
            response = gate.request_approval(
                approval_type=APPROVAL_TYPE,
                context={"service": "billing", "version": f"2.4.{i}"},
                timeout=TIMEOUT_S,
            )
            if response.approved:
                answered[response.request_id] = time.monotonic_ns()

        threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(args.waiters)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60 + args.waiters / 50
        while True:
            pending = console.get_pending_approvals(approval_type=APPROVAL_TYPE)
            if len(pending) >= args.waiters:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(pending)} of {args.waiters} requests appeared")
            time.sleep(0.05)
        if args.idle_seconds > 0 and idle is None and args.waiters > 1:
            # Let every waiter reach its polling loop, then count.
            time.sleep(1.5)
            before, t0 = commands(client), time.monotonic()
            time.sleep(args.idle_seconds)
            idle = (commands(client) - before) / (time.monotonic() - t0)
        sent: dict[str, int] = {}
        if args.answer == "random":
            start = time.monotonic()
            schedule = sorted(((random.uniform(0, POLL_INTERVAL_S), r) for r in pending), key=lambda x: x[0])
        else:
            start, schedule = 0.0, [(0.0, r) for r in pending]
        for offset, request in schedule:
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[request.request_id] = time.monotonic_ns()
            console.respond_to_approval(request.request_id, True, "bench-human", "benchmark")
        for t in threads:
            t.join(timeout=30)
        missing = [rid for rid in sent if rid not in answered]
        if missing:
            raise SystemExit(f"{len(missing)} waiters never got their answer")
        latencies += [(answered[rid] - sent[rid]) / 1e6 for rid in sent]
    return {"latencies_ms": latencies, "idle_commands_per_s": idle}


def seed(args) -> dict:
    client = redis.Redis.from_url(args.redis_url)
    pipe = client.pipeline()
    for i in range(args.pending):
        request = ApprovalRequest(
            request_id=f"approval_{uuid4().hex[:8]}",
            approval_type=LISTING_TYPE,
            agent_id="bench-agent",
            context={"service": "billing", "version": f"2.4.{i}"},
            timestamp=datetime.now(timezone.utc),
            timeout_seconds=TIMEOUT_S,
            status="pending",
        )
        # As request_approval stores it.
        pipe.setex(
            f"approval_request:{request.request_id}",
            int(TIMEOUT_S) + 60,
            json.dumps(request.to_dict()),
        )
    pipe.execute()
    return {"seeded": args.pending}


def list_pending(args) -> dict:
    client = redis.Redis.from_url(args.redis_url)
    console = ApprovalGate(memory=RedisMemory(client))
    latencies = []
    for _ in range(args.calls):
        t0 = time.perf_counter_ns()
        pending = console.get_pending_approvals(approval_type=LISTING_TYPE)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        if len(pending) != args.expect:
            raise SystemExit(f"listed {len(pending)} pending, not {args.expect}")
    return {"latencies_ms": latencies}


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("decision")
    d.add_argument("--redis-url", required=True)
    d.add_argument("--waiters", type=int, required=True)
    d.add_argument("--rounds", type=int, default=1)
    d.add_argument("--idle-seconds", type=float, default=0)
    d.add_argument("--answer", choices=["at-once", "random"], default="at-once")
    s = sub.add_parser("seed")
    s.add_argument("--redis-url", required=True)
    s.add_argument("--pending", type=int, required=True)
    l = sub.add_parser("list")
    l.add_argument("--redis-url", required=True)
    l.add_argument("--calls", type=int, required=True)
    l.add_argument("--expect", type=int, required=True)
    args = parser.parse_args()
    run = {"decision": decision, "seed": seed, "list": list_pending}[args.command]
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
