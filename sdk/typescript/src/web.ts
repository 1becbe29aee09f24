// Browsers (and anything with fetch): gRPC-Web (@connectrpc/connect-web),
// which approvald serves on its gRPC port.
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ApprovalClient, type ClientOptions } from "./client.js";

export * from "./index.js";

/** A client for approvald at `baseUrl`, e.g. "http://127.0.0.1:50051". */
export function createWebClient(baseUrl: string, options?: ClientOptions): ApprovalClient {
  return new ApprovalClient(createGrpcWebTransport({ baseUrl }), options);
}
