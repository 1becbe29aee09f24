// Who the client is: a bearer token sent with every call, as a Connect
// interceptor, so that it works with any transport (gRPC, gRPC-Web, your own).
import type { Interceptor } from "@connectrpc/connect";

/**
 * An interceptor that sends `authorization: Bearer <token>` with every call:
 * a static token from approvald's authentication file, or a JWT. Use it with
 * a transport of your own (`interceptors: [bearerToken(token)]`);
 * `createNodeClient` and `createWebClient` take `{ token }` instead.
 */
export function bearerToken(token: string): Interceptor {
  if (!token || token !== token.trim()) throw new TypeError("approvald: the token is empty or has surrounding whitespace");
  const authorization = `Bearer ${token}`;
  return (next) => async (request) => {
    request.header.set("authorization", authorization);
    return next(request);
  };
}

/** Options of `createNodeClient` and `createWebClient` beyond the client's. */
export interface CredentialOptions {
  /** Sent as `authorization: Bearer <token>` with every call (a static token or a JWT). */
  token?: string;
}
