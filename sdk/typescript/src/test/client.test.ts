// Live tests over both transports: gRPC (Node, HTTP/2) and gRPC-Web (what
// browsers use). The suite (scripts/suites/41-sdk-typescript.sh) starts Redis
// and two approvald replicas on it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createNodeClient } from "../node.js";
import { createWebClient } from "../web.js";
import { AlreadyDecidedError, ApprovalClient, ApprovalStatus, Code, ConnectError, InvalidArgumentError, type WatchEvent } from "../index.js";

const addrA = process.env.APPROVALD_ADDR_A;
const addrB = process.env.APPROVALD_ADDR_B;
if (!addrA || !addrB) throw new Error("APPROVALD_ADDR_A/B are not set: run scripts/suites/41-sdk-typescript.sh");
const defaultTimeout = process.env.APPROVALD_DEFAULT_TIMEOUT_SECONDS;
if (!defaultTimeout) throw new Error("APPROVALD_DEFAULT_TIMEOUT_SECONDS is not set: run scripts/suites/41-sdk-typescript.sh");

const transports: [string, (url: string, agentId: string) => ApprovalClient][] = [
  ["gRPC (Node)", (url, agentId) => createNodeClient(url, { agentId })],
  ["gRPC-Web", (url, agentId) => createWebClient(url, { agentId })],
];

/** An approval type no other test uses. */
const kind = () => `test.ts.${randomUUID()}`;

async function pendingOf(client: ApprovalClient, approvalType: string) {
  for (let i = 0; i < 400; i++) {
    for await (const a of client.listApprovals({ approvalTypes: [approvalType] })) return a;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${approvalType} approval became pending`);
}

for (const [name, connect] of transports) {
  describe(`over ${name}`, () => {
    const agent = connect(`http://${addrA}`, "ts-agent");
    const human = connect(`http://${addrB}`, "ts-human");

    it("requestApproval resolves with the decision a human made on another replica", async () => {
      const k = kind();
      const waiting = agent.requestApproval({ approvalType: k, context: { version: "2.0", n: 3 }, timeoutSeconds: 60 });
      const pending = await pendingOf(human, k);
      assert.deepEqual(pending.context, { version: "2.0", n: 3 });
      assert.equal(pending.agentId, "ts-agent");
      await human.respond(pending.id, true, { responder: "alice", reason: "ship it" });
      const decision = await waiting;
      assert.equal(decision.approved, true);
      assert.equal(decision.status, ApprovalStatus.APPROVED);
      assert.equal(decision.decidedBy, "alice");
      assert.equal(decision.reason, "ship it");
      assert.equal(decision.approval.id, pending.id);
    });

    it("an expired approval is not approved and says why", async () => {
      const decision = await agent.requestApproval({ approvalType: kind(), timeoutSeconds: 1 });
      assert.equal(decision.approved, false);
      assert.equal(decision.status, ApprovalStatus.EXPIRED);
      assert.equal(decision.reason, "deadline passed before a decision");
    });

    it("a wait that ends first leaves the approval pending for re-attach by idempotency key", async () => {
      const k = kind();
      const request = { approvalType: k, timeoutSeconds: 60, idempotencyKey: randomUUID() };
      await assert.rejects(agent.requestApproval(request, { timeoutMs: 300 }), (e: ConnectError) => e.code === Code.DeadlineExceeded);
      const pending = await pendingOf(human, k);
      assert.equal(pending.status, ApprovalStatus.PENDING);
      await human.respond(pending.id, false, { responder: "bob", reason: "not now" });
      const decision = await agent.requestApproval(request);
      assert.equal(decision.approval.id, pending.id);
      assert.equal(decision.approved, false);
      assert.equal(decision.reason, "not now");
    });

    it("createApproval without a key or timeout sends a made-up key and gets the server's default timeout", async () => {
      const approval = await agent.createApproval({ approvalType: kind() });
      assert.match(approval.idempotencyKey, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      const other = await agent.createApproval({ approvalType: kind() });
      assert.notEqual(other.idempotencyKey, approval.idempotencyKey);
      const seconds = Number(approval.deadline!.seconds - approval.createdAt!.seconds);
      assert.ok(Math.abs(seconds - Number(defaultTimeout)) <= 1, `deadline ${seconds}s after creation, server default ${defaultTimeout}s`);
    });

    it("a conflicting response is refused naming the winner; an identical retry is fine", async () => {
      const approval = await agent.createApproval({ approvalType: kind() });
      await human.respond(approval.id, true, { responder: "alice", reason: "ok" });
      await human.respond(approval.id, true, { responder: "alice", reason: "ok" });
      await assert.rejects(agent.respond(approval.id, false, { responder: "mallory" }), (e: unknown) =>
        e instanceof AlreadyDecidedError && e.code === Code.FailedPrecondition && e.decidedBy === "alice" && e.status === "approved");
      assert.equal((await agent.awaitApproval(approval.id)).approved, true);
    });

    it("bad input names the field; an unknown id is NOT_FOUND", async () => {
      await assert.rejects(agent.createApproval({ approvalType: "" }), (e: unknown) => e instanceof InvalidArgumentError && e.field === "approval_type");
      await assert.rejects(agent.getApproval("0190f0e0-0000-7000-8000-000000000000"), (e: ConnectError) => e.code === Code.NotFound);
    });

    it("watchPending gives the snapshot, synced, live events, and resumes by cursor on another replica", async () => {
      const k = kind();
      const first = await agent.createApproval({ approvalType: k });
      const seen: WatchEvent[] = [];
      let secondId = "";
      for await (const event of agent.watchPending({ approvalTypes: [k] })) {
        seen.push(event);
        if (event.kind === "synced") secondId = (await agent.createApproval({ approvalType: k })).id;
        if (seen.length === 3) break;
      }
      assert.deepEqual(seen.map((e) => e.kind), ["added", "synced", "added"]);
      assert.ok(seen[0].kind === "added" && seen[0].approval.id === first.id && seen[0].cursor === "");
      assert.ok(seen[1].cursor !== "");
      assert.ok(seen[2].kind === "added" && seen[2].approval.id === secondId && seen[2].cursor !== "");

      await human.respond(first.id, true, { responder: "alice" });
      for await (const event of human.watchPending({ approvalTypes: [k], cursor: seen[2].cursor })) {
        assert.ok(event.kind === "resolved" && event.approval.id === first.id && event.approval.status === ApprovalStatus.APPROVED,
          `first event after resume: ${JSON.stringify(event.kind)}`);
        break;
      }
    });

    it("listApprovals pages through every match", async () => {
      const k = kind();
      for (let i = 0; i < 5; i++) await agent.createApproval({ approvalType: k });
      let n = 0;
      for await (const _ of agent.listApprovals({ approvalTypes: [k], pageSize: 2 })) n++;
      assert.equal(n, 5);
    });
  });
}
