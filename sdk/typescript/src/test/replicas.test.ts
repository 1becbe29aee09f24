// Replicas that go away, over both transports: a waiting call and a watch
// survive a replica stopped with SIGTERM (the next replica on the address
// finishes them), and a cursor trimmed out of the event log gives "reset"
// and a fresh snapshot. The suite (scripts/suites/41-sdk-typescript.sh, via
// sdk/tests/cluster.sh) exports APPROVALD_BIN, APPROVALD_REDIS_URL and
// APPROVALD_REDIS_PREFIX so that tests can start replicas of their own.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { createNodeClient } from "../node.js";
import { createWebClient } from "../web.js";
import { ApprovalClient, ApprovalStatus, type WatchEvent } from "../index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/suites/41-sdk-typescript.sh`);
  return value;
}

const addrA = env("APPROVALD_ADDR_A");

const transports: [string, (url: string, agentId: string) => ApprovalClient][] = [
  ["gRPC (Node)", (url, agentId) => createNodeClient(url, { agentId })],
  ["gRPC-Web", (url, agentId) => createWebClient(url, { agentId })],
];

const kind = () => `test.ts.${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freeAddr(): Promise<string> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(`127.0.0.1:${port}`));
    });
  });
}

/** One approvald process on the suite's Redis, serving when returned. */
class Replica {
  private constructor(readonly addr: string, private readonly child: ChildProcess, private readonly exited: Promise<void>) {}

  static async start(addr: string, prefix: string, ...extra: string[]): Promise<Replica> {
    const child = spawn(env("APPROVALD_BIN"), [
      "--listen", addr, "--metrics-listen", await freeAddr(),
      "--redis-url", env("APPROVALD_REDIS_URL"), "--redis-prefix", prefix,
      "--shutdown-grace", "2s", ...extra,
    ], { stdio: "ignore" });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const replica = new Replica(addr, child, exited);
    const probe = createNodeClient(`http://${addr}`, { agentId: "probe" });
    for (let i = 0; i < 300; i++) {
      try {
        for await (const _ of probe.listApprovals({ pageSize: 1 }, { timeoutMs: 1000 })) break;
        return replica;
      } catch {
        await sleep(100);
      }
    }
    child.kill("SIGKILL");
    throw new Error(`approvald at ${addr} did not start`);
  }

  /** SIGTERM, as Kubernetes does, and wait for the exit. */
  async shutDown(): Promise<void> {
    this.child.kill("SIGTERM");
    await Promise.race([this.exited, sleep(30_000).then(() => { throw new Error("approvald did not exit within 30 s of SIGTERM"); })]);
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}

/** Reads a watch one event at a time, failing when none comes within 30 s. */
function reader(events: AsyncGenerator<WatchEvent>) {
  return {
    async next(): Promise<WatchEvent> {
      const result = await Promise.race([
        events.next(),
        sleep(30_000).then(() => { throw new Error("no watch event within 30 s"); }),
      ]);
      if (result.done) throw new Error("the watch ended");
      return result.value;
    },
    stop: () => events.return(undefined),
  };
}

const describeEvent = (e: WatchEvent) => `${e.kind} ${"approval" in e ? e.approval.id : ""}`.trim();

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
