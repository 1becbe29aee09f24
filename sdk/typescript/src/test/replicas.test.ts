// Replicas that go away, over both transports: a waiting call and a watch
// survive a replica stopped with SIGTERM (the next replica on the address
// finishes them), and a cursor trimmed out of the event log gives "reset"
// and a fresh snapshot. Replicas of the tests' own come from ./kit.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { ApprovalStatus, type WatchEvent } from "../index.js";
import { Replica, describeEvent, env, freeAddr, kind, reader, sleep, transports } from "./kit.js";

const addrA = env("APPROVALD_ADDR_A");

for (const [name, connect] of transports) {
  describe(`replicas going away, over ${name}`, () => {
    it("a requestApproval waiting on a replica stopped with SIGTERM finishes on the next one", { timeout: 120_000 }, async () => {
      const addr = await freeAddr();
      const k = kind();
      const first = await Replica.start(addr, env("APPROVALD_REDIS_PREFIX"));
      const agent = connect(`http://${addr}`, "ts-agent");
      const human = connect(`http://${addrA}`, "ts-human");
      let next: Replica | undefined;
      try {
        const waiting = agent.requestApproval({ approvalType: k, timeoutSeconds: 120 });
        let pendingId = "";
        for (let i = 0; i < 400 && !pendingId; i++) {
          for await (const a of human.listApprovals({ approvalTypes: [k] })) pendingId = a.id;
          if (!pendingId) await sleep(50);
        }
        assert.ok(pendingId, "the approval became pending");
        await first.shutDown(); // its waiter is told UNAVAILABLE and re-attaches
        next = await Replica.start(addr, env("APPROVALD_REDIS_PREFIX"));
        await human.respond(pendingId, true, { responder: "alice", reason: "after the restart" });
        const decision = await Promise.race([
          waiting,
          sleep(60_000).then(() => { throw new Error("the waiting call never finished on the next replica"); }),
        ]);
        assert.equal(decision.approved, true);
        assert.equal(decision.approval.id, pendingId);
      } finally {
        first.kill();
        next?.kill();
      }
    });

    it("a watch resumes by itself after its replica stops, with no gap and no duplicate", { timeout: 120_000 }, async () => {
      const addr = await freeAddr();
      const k = kind();
      const first = await Replica.start(addr, env("APPROVALD_REDIS_PREFIX"));
      const watcher = connect(`http://${addr}`, "ts-watcher");
      const human = connect(`http://${addrA}`, "ts-human");
      let next: Replica | undefined;
      const before = await human.createApproval({ approvalType: k });
      const events = reader(watcher.watchPending({ approvalTypes: [k] }));
      try {
        assert.equal(describeEvent(await events.next()), `added ${before.id}`);
        assert.equal((await events.next()).kind, "synced");
        const live = await human.createApproval({ approvalType: k });
        assert.equal(describeEvent(await events.next()), `added ${live.id}`);

        await first.shutDown();
        // While the watcher's replica is gone: each must arrive exactly once.
        await human.respond(before.id, true, { responder: "alice" });
        const second = await human.createApproval({ approvalType: k });
        await human.cancelApproval(live.id, "superseded");
        next = await Replica.start(addr, env("APPROVALD_REDIS_PREFIX"));

        const seen: WatchEvent[] = [];
        for (let i = 0; i < 3; i++) seen.push(await events.next());
        assert.deepEqual(seen.map(describeEvent), [`resolved ${before.id}`, `added ${second.id}`, `resolved ${live.id}`],
          "resumed from its last cursor: no reset, no gap, no duplicate");
        assert.ok(seen.every((e) => e.cursor !== ""));
        assert.ok(seen[0].kind === "resolved" && seen[0].approval.status === ApprovalStatus.APPROVED);
      } finally {
        await events.stop();
        first.kill();
        next?.kill();
      }
    });

    it("a cursor trimmed from the event log gives reset, then a fresh snapshot", { timeout: 120_000 }, async () => {
      // A store of its own whose event log keeps 3 events.
      const addr = await freeAddr();
      const k = kind();
      const small = await Replica.start(addr, `ts-trim-${randomUUID()}`, "--event-log-cap", "3");
      const c = connect(`http://${addr}`, "ts-trim");
      try {
        const events = reader(c.watchPending({ approvalTypes: [k] }));
        assert.equal((await events.next()).kind, "synced");
        const kept = await c.createApproval({ approvalType: k });
        const live = await events.next();
        assert.equal(describeEvent(live), `added ${kept.id}`);
        await events.stop();
        // 160 events while nobody watches (Redis trims by nodes of 100 entries).
        for (let i = 0; i < 80; i++) {
          const a = await c.createApproval({ approvalType: k });
          await c.cancelApproval(a.id, "churn");
        }
        const resumed = reader(c.watchPending({ approvalTypes: [k], cursor: live.cursor }));
        try {
          const after = [await resumed.next(), await resumed.next(), await resumed.next()];
          assert.deepEqual(after.map(describeEvent), ["reset", `added ${kept.id}`, "synced"],
            "a trimmed cursor gives reset and a re-sync, not a silent gap");
        } finally {
          await resumed.stop();
        }
      } finally {
        small.kill();
      }
    });
  });
}
