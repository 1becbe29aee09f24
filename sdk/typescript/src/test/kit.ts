// Test kit shared by the live tests: the suite's environment, free ports,
// approvald processes of a test's own, and a watch read one event at a time.
// The suite (scripts/suites/41-sdk-typescript.sh, via sdk/tests/cluster.sh)
// exports APPROVALD_BIN, APPROVALD_REDIS_URL and APPROVALD_REDIS_PREFIX.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { createNodeClient } from "../node.js";
import { createWebClient } from "../web.js";
import type { ApprovalClient, WatchEvent } from "../index.js";

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/suites/41-sdk-typescript.sh`);
  return value;
}

/** Both transports: gRPC (Node, HTTP/2) and gRPC-Web (what browsers use). */
export const transports: [string, (url: string, agentId: string) => ApprovalClient][] = [
  ["gRPC (Node)", (url, agentId) => createNodeClient(url, { agentId })],
  ["gRPC-Web", (url, agentId) => createWebClient(url, { agentId })],
];

/** An approval type no other test uses. */
export const kind = () => `test.ts.${randomUUID()}`;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function freeAddr(): Promise<string> {
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
export class Replica {
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
export function reader(events: AsyncGenerator<WatchEvent>) {
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

export const describeEvent = (e: WatchEvent) => `${e.kind} ${"approval" in e ? e.approval.id : ""}`.trim();
