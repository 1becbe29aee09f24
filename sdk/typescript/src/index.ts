// @approvald/client: the transport-agnostic client. Pick a transport from
// "@approvald/client/node" (gRPC over HTTP/2) or "@approvald/client/web"
// (gRPC-Web, browsers), or bring your own Connect transport.
export { ApprovalClient, type ClientOptions, type Decision, type NewApproval, type WatchEvent } from "./client.js";
export { bearerToken, type CredentialOptions } from "./credentials.js";
export { AlreadyDecidedError, AlreadyVotedError, ContextChangedError, InvalidArgumentError } from "./errors.js";
// Decision (a vote's approve/reject) is exported as VoteDecision: Decision is the result of requestApproval.
export { ApprovalStatus, Decision as VoteDecision, OnTimeout, type Approval, type ApprovalPolicy, type Vote } from "./gen/approval/v1/approval_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
