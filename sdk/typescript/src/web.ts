// Browsers (and anything with fetch): gRPC-Web (@connectrpc/connect-web),
// which approvald serves on its gRPC port.
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ApprovalClient, type ClientOptions } from "./client.js";
import { bearerToken, type CredentialOptions } from "./credentials.js";

export * from "./index.js";

export interface WebClientOptions extends ClientOptions, CredentialOptions {}

/**
 * A client for approvald at `baseUrl`, e.g. "http://127.0.0.1:50051", or
 * "https://..." for TLS (the browser, or fetch, checks the certificate).
 */
export function createWebClient(baseUrl: string, options: WebClientOptions = {}): ApprovalClient {
  const interceptors = options.token === undefined ? [] : [bearerToken(options.token)];
  return new ApprovalClient(createGrpcWebTransport({ baseUrl, interceptors }), options);
}
