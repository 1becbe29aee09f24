// Tokens and TLS against an approvald of its own with authentication on
// (in-memory store), over both transports: the token's principal is the
// requester and the decider, whatever the call says; refusals are
// ConnectErrors with the code.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNodeClient, type NodeClientOptions } from "../node.js";
import { createWebClient } from "../web.js";
import { ApprovalClient, ApprovalStatus, Code, ConnectError, bearerToken } from "../index.js";

const bin = process.env.APPROVALD_BIN;
if (!bin) throw new Error("APPROVALD_BIN is not set: run scripts/suites/41-sdk-typescript.sh");

const sha256 = (token: string) => createHash("sha256").update(token).digest("hex");

/** approvald with tokens for release-bot (requester), alice (approver of
 * deploy:*) and carol (both), and with `tls` a self-signed certificate for localhost. */
class SecuredServer {
  readonly dir = mkdtempSync(join(tmpdir(), "approvald-auth-"));
  readonly aliceToken = `alice-${randomUUID()}`;
  readonly carolToken = `carol-${randomUUID()}`;
  botToken = "";
  url = "";
  ca?: Buffer;
  private process?: ChildProcess;

  constructor(private readonly tls: boolean) {}

  async start() {
    // One token as operators make them; the file holds the sha256 of each.
    const made = Object.fromEntries(execFileSync(bin!, ["new-token"], { encoding: "utf8" })
      .split("\n").filter((l) => l.includes(":")).map((l) => l.split(":").map((s) => s.trim())));
    this.botToken = made.token;
    const tokens = [["release-bot", `["requester"]`, made.sha256],
      ["alice", `["approver:deploy:*"]`, sha256(this.aliceToken)],
      ["carol", `["requester", "approver:deploy:*"]`, sha256(this.carolToken)]];
    writeFileSync(join(this.dir, "auth.toml"), tokens
      .map(([p, r, h]) => `[[tokens]]\nprincipal = "${p}"\nroles = ${r}\nsha256 = "${h}"\n`).join("\n"));
    const [port, metrics] = [await freePort(), await freePort()];
    const args = ["--listen", `127.0.0.1:${port}`, "--metrics-listen", `127.0.0.1:${metrics}`,
      "--auth-config", join(this.dir, "auth.toml"), "--shutdown-grace", "1s"];
    if (this.tls) {
      const [cert, key] = [join(this.dir, "server.pem"), join(this.dir, "server.key")];
      execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        "-keyout", key, "-out", cert], { stdio: "ignore" });
      args.push("--tls-cert-file", cert, "--tls-key-file", key);
      this.ca = readFileSync(cert);
      this.url = `https://localhost:${port}`; // the certificate names localhost
    } else {
      this.url = `http://127.0.0.1:${port}`;
    }
    this.process = spawn(bin!, args, { stdio: "ignore" });
    await listening(port);
  }

  async stop() {
    const exited = new Promise((resolve) => this.process?.once("exit", resolve));
    this.process?.kill("SIGTERM");
    await exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function listening(port: number) {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => { socket.destroy(); resolve(true); });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`approvald did not listen on ${port}`);
}

const deployKind = () => `deploy:${randomUUID()}`;

async function pendingOf(client: ApprovalClient, approvalType: string) {
  for (let i = 0; i < 400; i++) {
    for await (const a of client.listApprovals({ approvalTypes: [approvalType] })) return a;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${approvalType} approval became pending`);
}

const isCode = (code: Code) => (e: unknown) => e instanceof ConnectError && e.code === code;

const plain = new SecuredServer(false);
const tls = new SecuredServer(true);
before(async () => { await plain.start(); await tls.start(); });
after(async () => { await plain.stop(); await tls.stop(); });

const transports: [string, () => SecuredServer, (s: SecuredServer, token?: string) => ApprovalClient][] = [
  ["gRPC (Node)", () => plain, (s, token) => createNodeClient(s.url, { token, agentId: "claims-to-be-alice" })],
  ["gRPC-Web", () => plain, (s, token) => createWebClient(s.url, { token, agentId: "claims-to-be-alice" })],
  ["gRPC (Node) over TLS", () => tls, (s, token) => createNodeClient(s.url, { token, tls: { ca: s.ca } })],
];

for (const [name, server, connectAs] of transports) {
  describe(`with authentication, over ${name}`, () => {
    it("the requester is the token's principal and the decider the approver's", async () => {
      const s = server();
      const [bot, alice] = [connectAs(s, s.botToken), connectAs(s, s.aliceToken)];
      const k = deployKind();
      const waiting = bot.requestApproval({ approvalType: k, timeoutSeconds: 60 });
      const pending = await pendingOf(alice, k);
      assert.equal(pending.requester, "release-bot");
      await alice.respond(pending.id, true, { responder: "someone-else", reason: "checked" });
      const decision = await waiting;
      assert.equal(decision.approved, true);
      assert.equal(decision.decidedBy, "alice");
    });

    it("without a token, or with an unknown one, calls are UNAUTHENTICATED", async () => {
      const s = server();
      const anonymous = connectAs(s);
      await assert.rejects(anonymous.createApproval({ approvalType: deployKind() }), isCode(Code.Unauthenticated));
      await assert.rejects(anonymous.requestApproval({ approvalType: deployKind() }), isCode(Code.Unauthenticated));
      await assert.rejects(async () => { for await (const _ of anonymous.watchPending()) break; }, isCode(Code.Unauthenticated));
      const stranger = connectAs(s, "not-a-known-token");
      await assert.rejects(stranger.getApproval("0190f0e0-0000-7000-8000-000000000000"), isCode(Code.Unauthenticated));
    });

    it("a requester cannot approve its own request", async () => {
      const s = server();
      const [carol, alice] = [connectAs(s, s.carolToken), connectAs(s, s.aliceToken)];
      const own = await carol.createApproval({ approvalType: deployKind() });
      assert.equal(own.requester, "carol");
      await assert.rejects(carol.respond(own.id, true, { responder: "carol" }), isCode(Code.PermissionDenied));
      assert.equal((await alice.getApproval(own.id)).status, ApprovalStatus.PENDING);
    });
  });
}

it("bad credential options are refused before any call", () => {
  assert.throws(() => bearerToken(""), TypeError);
  assert.throws(() => createNodeClient("http://127.0.0.1:1", { tls: {} }), TypeError);
  const options: NodeClientOptions = { tls: { cert: "x" } };
  assert.throws(() => createNodeClient("https://127.0.0.1:1", options), TypeError);
});
