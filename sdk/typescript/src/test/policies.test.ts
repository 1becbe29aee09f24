// Policies seen from TypeScript, over both transports, against an approvald
// of the test's own reading a policy file: two votes from two responders
// approve (both listed), each vote before the last is an `updated` watch
// event with a resumable cursor, a changed vote is refused, and an
// on_timeout = "approve" policy lets the gate proceed at the deadline.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AlreadyVotedError, ApprovalStatus, ContextChangedError, OnTimeout, VoteDecision } from "../index.js";
import { Replica, describeEvent, freeAddr, reader, transports } from "./kit.js";

const POLICIES = `
[[policies]]
approval_types = ["ts-vote:*"]
required_approvals = 2

[[policies]]
approval_types = ["ts-quiet:*"]
on_timeout = "approve"
default_timeout = "1s"
`;

const dir = mkdtempSync(join(tmpdir(), "approvald-policies-"));
let server: Replica;

before(async () => {
  const config = join(dir, "approvald.toml");
  writeFileSync(config, POLICIES);
  server = await Replica.start(await freeAddr(), `ts-policies-${randomUUID()}`, "--config", config);
});

after(() => {
  server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

for (const [name, connect] of transports) {
  describe(`policies, over ${name}`, () => {
    it("two votes from two responders approve, with both votes listed; a changed vote is refused", async () => {
      const agent = connect(`http://${server.addr}`, "ts-agent");
      const human = connect(`http://${server.addr}`, "ts-human");
      const created = await agent.createApproval({ approvalType: `ts-vote:${randomUUID()}`, context: { version: "2.4.1" } });
      assert.equal(created.requiredApprovals, 2);
      assert.equal(created.policy?.name, "ts-vote:*");
      assert.match(created.contextDigest, /^sha256:[0-9a-f]{64}$/);
      const waiting = agent.awaitApproval(created.id);

      const one = await human.respond(created.id, true, { responder: "alice", reason: "diff read", expectedContextDigest: created.contextDigest });
      assert.equal(one.status, ApprovalStatus.PENDING, "one approval of two: still pending");
      assert.deepEqual(one.votes.map((v) => [v.voter, v.decision, v.reason]), [["alice", VoteDecision.APPROVE, "diff read"]]);
      assert.ok(one.votes[0].votedAt, "a vote has its time");
      await assert.rejects(human.respond(created.id, false, { responder: "alice", reason: "second thoughts" }), (e: unknown) =>
        e instanceof AlreadyVotedError && e.voter === "alice" && e.decision === "approve");

      await human.respond(created.id, true, { responder: "bob" });
      const decision = await waiting;
      assert.equal(decision.approved, true);
      assert.equal(decision.status, ApprovalStatus.APPROVED);
      assert.equal(decision.decidedBy, "bob");
      assert.deepEqual(decision.votes.map((v) => v.voter), ["alice", "bob"]);
    });

    it("a stale context digest is refused and the vote is not recorded", async () => {
      const c = connect(`http://${server.addr}`, "ts-agent");
      const created = await c.createApproval({ approvalType: `ts-vote:${randomUUID()}`, context: { rows: 3 } });
      await assert.rejects(c.respond(created.id, true, { responder: "alice", expectedContextDigest: `sha256:${"0".repeat(64)}` }), (e: unknown) =>
        e instanceof ContextChangedError && e.contextDigest === created.contextDigest);
      assert.deepEqual((await c.getApproval(created.id)).votes, []);
    });

    it("a watcher sees the first vote as an updated event whose cursor resumes the watch", { timeout: 60_000 }, async () => {
      const c = connect(`http://${server.addr}`, "ts-watcher");
      const k = `ts-vote:${randomUUID()}`;
      const events = reader(c.watchPending({ approvalTypes: [k] }));
      let updatedCursor = "";
      try {
        assert.equal((await events.next()).kind, "synced");
        const created = await c.createApproval({ approvalType: k });
        assert.equal(describeEvent(await events.next()), `added ${created.id}`);
        await c.respond(created.id, true, { responder: "alice" });
        const updated = await events.next();
        assert.equal(describeEvent(updated), `updated ${created.id}`);
        assert.ok(updated.kind === "updated" && updated.approval.status === ApprovalStatus.PENDING);
        assert.deepEqual(updated.approval.votes.map((v) => v.voter), ["alice"]);
        assert.notEqual(updated.cursor, "");
        updatedCursor = updated.cursor;
        await c.respond(created.id, true, { responder: "bob" });
        assert.equal(describeEvent(await events.next()), `resolved ${created.id}`);
      } finally {
        await events.stop();
      }
      // Resumed from the updated event's cursor: exactly what followed it.
      const resumed = reader(c.watchPending({ approvalTypes: [k], cursor: updatedCursor }));
      try {
        const next = await resumed.next();
        assert.ok(next.kind === "resolved" && next.approval.status === ApprovalStatus.APPROVED, `after resume: ${describeEvent(next)}`);
      } finally {
        await resumed.stop();
      }
    });

    it("under on_timeout = approve the gate proceeds at the deadline: approved, status EXPIRED, the reason names the policy", { timeout: 60_000 }, async () => {
      const agent = connect(`http://${server.addr}`, "ts-agent");
      const decision = await agent.requestApproval({ approvalType: `ts-quiet:${randomUUID()}` });
      assert.equal(decision.status, ApprovalStatus.EXPIRED);
      assert.equal(decision.approved, true, "nobody objected: the gate proceeds");
      assert.equal(decision.approval.onTimeout, OnTimeout.APPROVE);
      assert.match(decision.reason, /policy "ts-quiet:\*"/);
      assert.deepEqual(decision.votes, []);
    });
  });
}
