// What the tests' agents use: the same SDK web entry point as the page
// (gRPC-Web over fetch works in Node too). Bundled by test/harness.mjs.
export { createWebClient, AlreadyDecidedError, ApprovalStatus, Code, ConnectError } from "../../sdk/typescript/src/web.ts";
