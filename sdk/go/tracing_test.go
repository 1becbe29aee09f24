package approvald_test

// OpenTelemetry: with otelgrpc's client stats handler on the connection
// (README, "Tracing"), the caller's trace context travels with each call as a
// W3C traceparent and approvald's server spans land in the caller's trace.
// The suite's traced replica exports its spans to an OTLP receiver that
// writes them to $APPROVALD_OTLP_SPANS (sdk/tests/cluster.sh).

import (
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	approvald "github.com/approvald/approvald/sdk/go"
)

// serverSpanParent is the parent span id of approvald's span for method in
// trace traceID, once the OTLP receiver has it.
func serverSpanParent(t *testing.T, traceID trace.TraceID, method string) string {
	t.Helper()
	path := mustEnv(t, "APPROVALD_OTLP_SPANS")
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		spans, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(spans), "\n") {
			f := strings.Fields(line)
			if len(f) == 4 && f[0] == "span" && f[1] == traceID.String() && f[3] == method {
				return f[2]
			}
		}
	}
	t.Fatalf("approvald exported no %s span in trace %s within 20 s", method, traceID)
	return ""
}

func TestTheCallersTraceContextReachesApprovaldThroughOtelgrpc(t *testing.T) {
	c, err := approvald.Dial(mustEnv(t, "APPROVALD_ADDR_TRACED"),
		approvald.WithAgentID("go-traced"),
		approvald.WithDialOptions(grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithPropagators(propagation.TraceContext{})))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The caller's current span, as an incoming request of its own would set it.
	var traceID trace.TraceID
	var spanID trace.SpanID
	rand.Read(traceID[:])
	rand.Read(spanID[:])
	ctx := trace.ContextWithRemoteSpanContext(testContext(t), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	created, err := c.CreateApproval(ctx, approvald.Request{ApprovalType: kind(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelApproval(ctx, created.GetId(), "done"); err != nil {
		t.Fatal(err)
	}

	// No tracer provider is installed, so otelgrpc's client span is the
	// caller's own span context: approvald's span is its direct child.
	for _, method := range []string{"CreateApproval", "CancelApproval"} {
		if parent := serverSpanParent(t, traceID, "approval.v1.ApprovalService/"+method); parent != spanID.String() {
			t.Errorf("%s: server span's parent = %s, want the caller's span %s", method, parent, spanID)
		}
	}
}
