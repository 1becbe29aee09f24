// OpenTelemetry: with traceContext() from "@approvald/client/otel" among the
// client's interceptors (README, "Tracing"), the caller's active trace context
// travels with each call as a W3C traceparent and approvald's server spans
// land in the caller's trace. The suite's traced replica exports its spans to
// an OTLP receiver that writes them to $APPROVALD_OTLP_SPANS
// (sdk/tests/cluster.sh).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { context, propagation, trace, TraceFlags } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { createNodeClient } from "../node.js";
import { traceContext } from "../otel.js";
import { ApprovalClient } from "../index.js";

const traced = process.env.APPROVALD_ADDR_TRACED;
const spansFile = process.env.APPROVALD_OTLP_SPANS;
if (!traced || !spansFile) throw new Error("APPROVALD_ADDR_TRACED is not set: run scripts/suites/41-sdk-typescript.sh");

// What an application's OpenTelemetry setup registers (the Node SDK does both).
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

/** The parent span id of approvald's span for `method` in `traceId`, once exported. */
async function serverSpanParent(traceId: string, method: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    for (const line of (await readFile(spansFile!, "utf8")).split("\n")) {
      const f = line.split(" ");
      if (f.length === 4 && f[0] === "span" && f[1] === traceId && f[3] === method) return f[2];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`approvald exported no ${method} span in trace ${traceId} within 20 s`);
}

const clients: [string, () => ApprovalClient][] = [
  ["gRPC (Node)", () => createNodeClient(`http://${traced}`, { agentId: "ts-traced", interceptors: [traceContext()] })],
  [
    "gRPC-Web",
    () =>
      new ApprovalClient(createGrpcWebTransport({ baseUrl: `http://${traced}`, interceptors: [traceContext()] }), {
        agentId: "ts-traced",
      }),
  ],
];

for (const [name, connect] of clients) {
  describe(`over ${name}`, () => {
    it("the caller's active trace context reaches approvald and its spans join that trace", async () => {
      const client = connect();
      const traceId = randomBytes(16).toString("hex");
      const spanId = randomBytes(8).toString("hex");
      const caller = trace.setSpanContext(context.active(), { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
      await context.with(caller, async () => {
        const created = await client.createApproval({ approvalType: `test.ts.${randomUUID()}` });
        await client.cancelApproval(created.id, "done");
      });
      for (const method of ["CreateApproval", "CancelApproval"]) {
        assert.equal(await serverSpanParent(traceId, `approval.v1.ApprovalService/${method}`), spanId, method);
      }
    });
  });
}
