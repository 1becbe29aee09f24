// Node: gRPC over HTTP/2 (@connectrpc/connect-node).
import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ApprovalClient, type ClientOptions } from "./client.js";
import { bearerToken, type CredentialOptions } from "./credentials.js";

export * from "./index.js";

/** TLS settings for an https:// base URL, as node:tls takes them (PEM contents, not paths). */
export interface TlsOptions {
  /** The CA (or self-signed certificate) to trust for the server's certificate; default: Node's roots. */
  ca?: string | Buffer;
  /** A client certificate and its key (both or neither), for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The name to expect in the server's certificate, if not the URL's host. */
  servername?: string;
}

export interface NodeClientOptions extends ClientOptions, CredentialOptions {
  /** TLS settings; the base URL must be https:// (https:// alone uses Node's roots). */
  tls?: TlsOptions;
  /** More interceptors for every call, e.g. `traceContext()` from "@approvald/client/otel". */
  interceptors?: Interceptor[];
}

/**
 * A client for approvald at `baseUrl`: "http://127.0.0.1:50051", or
 * "https://approvald.example.com:50051" for TLS.
 */
export function createNodeClient(baseUrl: string, options: NodeClientOptions = {}): ApprovalClient {
  const { token, tls, interceptors = [] } = options;
  if (tls && !baseUrl.startsWith("https:")) throw new TypeError("approvald: tls options need an https:// base URL");
  if (tls && !tls.cert !== !tls.key) throw new TypeError("approvald: tls.cert and tls.key go together (mutual TLS needs both)");
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: token === undefined ? interceptors : [bearerToken(token), ...interceptors],
    nodeOptions: tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername } : undefined,
  });
  return new ApprovalClient(transport, options);
}
