// OpenTelemetry: an interceptor that sends the caller's current trace
// context (W3C traceparent / tracestate, through the globally registered
// propagator) with every call, so that approvald's server spans join the
// caller's trace. A separate entry point, "@approvald/client/otel", so that
// only programs that use it need @opentelemetry/api (an optional peer
// dependency). Connect has no OpenTelemetry instrumentation of its own; this
// is what one does: inject into the request's headers.
import type { Interceptor } from "@connectrpc/connect";
import { context, propagation, type TextMapSetter } from "@opentelemetry/api";

const intoHeaders: TextMapSetter<Headers> = {
  set(headers, key, value) {
    headers.set(key, value);
  },
};

/**
 * An interceptor that injects the active OpenTelemetry context into every
 * call's metadata: `createNodeClient(url, { interceptors: [traceContext()] })`,
 * or in a transport of your own (`interceptors: [traceContext()]`). It sends
 * nothing until a propagator is registered (the OpenTelemetry Node SDK
 * registers W3C Trace Context by default).
 */
export function traceContext(): Interceptor {
  return (next) => async (request) => {
    propagation.inject(context.active(), request.header, intoHeaders);
    return next(request);
  };
}
