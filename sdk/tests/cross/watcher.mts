// The watcher of the cross-language test: follows pending approvals of one
// type with the TypeScript SDK (over gRPC, in Node) and prints each event,
// until the first approval it saw added is resolved.
//
// Usage: node watcher.mjs TARGET_URL APPROVAL_TYPE
// Prints `synced`, `added <id>`, `resolved <id> <status> <decided_by>` lines.
import { createNodeClient } from "@approvald/client/node";
import { ApprovalStatus } from "@approvald/client/gen/approval/v1/approval_pb";

const [url, approvalType] = process.argv.slice(2);
const client = createNodeClient(url);
let watched: string | undefined;
for await (const event of client.watchPending({ approvalTypes: [approvalType] })) {
  if (event.kind === "synced" || event.kind === "reset") {
    console.log(event.kind);
  } else if (event.kind === "added") {
    watched ??= event.approval.id;
    console.log("added", event.approval.id);
  } else if (event.kind === "resolved") {
    const { id, status, decidedBy } = event.approval;
    console.log("resolved", id, ApprovalStatus[status], decidedBy);
    if (id === watched) break;
  }
}
