"""OpenTelemetry: with the standard gRPC client instrumentation on
(`approvald[otel]`, README "Tracing"), the caller's current trace context
travels with each call as a W3C traceparent, and approvald's server spans land
in the caller's trace. The suite's traced replica exports its spans to an OTLP
receiver that writes them to $APPROVALD_OTLP_SPANS (sdk/tests/cluster.sh)."""

import os
import pathlib
import time

import pytest
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcInstrumentorClient
from opentelemetry.sdk.trace import TracerProvider

from approvald import ApprovalClient
from approvald.aio import AsyncApprovalClient


@pytest.fixture(scope="module")
def traced_addr() -> str:
    addr = os.environ.get("APPROVALD_ADDR_TRACED")
    if not addr:
        pytest.exit("APPROVALD_ADDR_TRACED is not set: run scripts/suites/40-sdk-python.sh", 2)
    return addr


def server_span_in_trace(trace_id: str, method: str, within: float = 20.0) -> str:
    """The parent span id of approvald's span for `method` in `trace_id`."""
    spans = pathlib.Path(os.environ["APPROVALD_OTLP_SPANS"])
    ends = time.monotonic() + within
    while time.monotonic() < ends:
        for line in spans.read_text().splitlines():
            fields = line.split(" ")
            if fields[0] == "span" and fields[1] == trace_id and fields[3] == method:
                return fields[2]
        time.sleep(0.1)
    pytest.fail(f"approvald exported no {method} span in trace {trace_id} within {within} s")


def test_the_callers_trace_context_reaches_approvald_through_the_grpc_instrumentation(
    traced_addr, kind
):
    provider = TracerProvider()
    instrumentor = GrpcInstrumentorClient()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with ApprovalClient(traced_addr, agent_id="traced-agent") as client:
            with provider.get_tracer("test").start_as_current_span("agent step") as step:
                created = client.create(kind, {"step": "traced"})
                client.cancel(created.id, "done")
    finally:
        instrumentor.uninstrument()
    trace_id = format(step.get_span_context().trace_id, "032x")
    # The server span's parent is the instrumentation's client span, a child of the caller's.
    assert server_span_in_trace(trace_id, "approval.v1.ApprovalService/CreateApproval") != "-"
    server_span_in_trace(trace_id, "approval.v1.ApprovalService/CancelApproval")


async def test_the_callers_trace_context_reaches_approvald_from_asyncio(traced_addr, kind):
    provider = TracerProvider()
    instrumentor = GrpcAioInstrumentorClient()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with AsyncApprovalClient(traced_addr, agent_id="traced-agent") as client:
            with provider.get_tracer("test").start_as_current_span("agent step") as step:
                created = await client.create(kind, {"step": "traced"})
                await client.cancel(created.id, "done")
    finally:
        instrumentor.uninstrument()
    trace_id = format(step.get_span_context().trace_id, "032x")
    server_span_in_trace(trace_id, "approval.v1.ApprovalService/CreateApproval")
    server_span_in_trace(trace_id, "approval.v1.ApprovalService/CancelApproval")
