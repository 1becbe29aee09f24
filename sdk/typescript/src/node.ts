// Node: gRPC over HTTP/2 (@connectrpc/connect-node).
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ApprovalClient, type ClientOptions } from "./client.js";

export * from "./index.js";

/** A client for approvald at `baseUrl`, e.g. "http://127.0.0.1:50051". */
export function createNodeClient(baseUrl: string, options?: ClientOptions): ApprovalClient {
  return new ApprovalClient(createGrpcTransport({ baseUrl }), options);
}
