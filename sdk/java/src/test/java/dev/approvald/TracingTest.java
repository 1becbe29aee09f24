package dev.approvald;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.approvald.approval.v1.Approval;
import io.opentelemetry.api.OpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Scope;
import io.opentelemetry.context.propagation.ContextPropagators;
import io.opentelemetry.instrumentation.grpc.v1_6.GrpcTelemetry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * OpenTelemetry: with the OpenTelemetry gRPC instrumentation's client interceptor on the gate
 * (README, "Tracing"), the caller's current trace context travels with each call as a W3C
 * traceparent and approvald's server spans land in the caller's trace. The suite's traced replica
 * exports its spans to an OTLP receiver that writes them to $APPROVALD_OTLP_SPANS
 * (sdk/tests/cluster.sh).
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TracingTest {
  /** The parent span id of approvald's span for {@code method} in {@code traceId}. */
  private static String serverSpanParent(String traceId, String method) throws IOException {
    Path spans = Path.of(Live.env("APPROVALD_OTLP_SPANS"));
    long ends = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (System.nanoTime() < ends) {
      for (String line : Files.readAllLines(spans)) {
        String[] f = line.split(" ");
        if (f.length == 4 && f[0].equals("span") && f[1].equals(traceId) && f[3].equals(method)) {
          return f[2];
        }
      }
      Live.sleep(Duration.ofMillis(100));
    }
    return fail("approvald exported no " + method + " span in trace " + traceId + " within 20 s");
  }

  private static String randomHex(int bytes) {
    byte[] b = new byte[bytes];
    new SecureRandom().nextBytes(b);
    return HexFormat.of().formatHex(b);
  }

  @Test
  void theCallersTraceContextReachesApprovaldThroughTheGrpcInstrumentation() throws Exception {
    // Propagation only (no SDK): the instrumentation's client span is the caller's own span
    // context, so approvald's span is its direct child.
    OpenTelemetry otel =
        OpenTelemetry.propagating(ContextPropagators.create(W3CTraceContextPropagator.getInstance()));
    String traceId = randomHex(16);
    String spanId = randomHex(8);
    SpanContext caller =
        SpanContext.createFromRemoteParent(
            traceId, spanId, TraceFlags.getSampled(), TraceState.getDefault());
    try (ApprovalGate gate =
        ApprovalGate.builder(Live.env("APPROVALD_ADDR_TRACED"))
            .agentId("java-traced")
            .intercept(GrpcTelemetry.create(otel).createClientInterceptor())
            .build()) {
      Scope current = Span.wrap(caller).makeCurrent();
      try {
        Approval created = gate.createApproval(ApprovalRequest.builder(Live.uniqueType()).build());
        gate.cancelApproval(created.getId(), "done");
      } finally {
        current.close();
      }
    }
    for (String method : new String[] {"CreateApproval", "CancelApproval"}) {
      assertEquals(
          spanId,
          serverSpanParent(traceId, "approval.v1.ApprovalService/" + method),
          method + ": the server span's parent is the caller's span");
    }
  }
}
