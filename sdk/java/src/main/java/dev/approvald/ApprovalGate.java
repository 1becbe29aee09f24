package dev.approvald;

import static dev.approvald.approval.v1.Decision.DECISION_APPROVE;
import static dev.approvald.approval.v1.Decision.DECISION_REJECT;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.AwaitApprovalRequest;
import dev.approvald.approval.v1.AwaitApprovalResponse;
import dev.approvald.approval.v1.CancelApprovalRequest;
import dev.approvald.approval.v1.GetApprovalRequest;
import dev.approvald.approval.v1.ListApprovalsRequest;
import dev.approvald.approval.v1.ListApprovalsResponse;
import dev.approvald.approval.v1.RequestApprovalResponse;
import dev.approvald.approval.v1.RespondRequest;
import dev.approvald.approval.v1.WatchPendingRequest;
import io.grpc.CallOptions;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A connection to approvald (any replica) for an agent that blocks until a human decides, and for
 * the humans' side: respond, get, list, cancel, watch. Thread-safe; close it when done.
 *
 * <pre>{@code
 * try (ApprovalGate gate = ApprovalGate.builder("127.0.0.1:50051").agentId("deployer").build()) {
 *   Decision d = gate.requestApproval(ApprovalRequest.builder("deploy:production").build());
 * }
 * }</pre>
 */
public final class ApprovalGate implements AutoCloseable {
  /** Where approvald listens by default. */
  public static final String DEFAULT_TARGET = "127.0.0.1:50051";

  private final ManagedChannel channel;
  private final ApprovalApi api;
  private final String agentId;
  private final Duration reconnectTimeout;

  private ApprovalGate(Builder b) {
    ChannelCredentials credentials = b.credentials;
    if (credentials == null) {
      credentials = InsecureChannelCredentials.create();
    }
    ManagedChannelBuilder<?> channelBuilder =
        Grpc.newChannelBuilder(Replicas.channelTarget(b.target), credentials);
    if (b.authority != null) {
      channelBuilder.overrideAuthority(b.authority);
    }
    channel = channelBuilder.build();
    io.grpc.Channel calls = channel;
    if (b.bearerToken != null) {
      Metadata headers = new Metadata();
      headers.put(
          Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER),
          "Bearer " + b.bearerToken);
      calls = ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(headers));
    }
    calls = ClientInterceptors.intercept(calls, b.interceptors);
    api = new ApprovalApi(calls, CallOptions.DEFAULT);
    agentId = b.agentId;
    reconnectTimeout = b.reconnectTimeout;
  }

  /**
   * A gate to approvald at {@code target}: "host:port", or several replicas as
   * "host:port,host:port" (a blocked call re-attaches to any of them).
   */
  public static Builder builder(String target) {
    return new Builder(target);
  }

  /** The generated messages' gRPC client, for what this class does not wrap. */
  public ApprovalApi api() {
    return api;
  }

  /**
   * Creates an approval and blocks until it is final: approved, rejected, expired or cancelled.
   * A lost connection or a replica shutting down re-attaches by the request's idempotency key
   * (made up when it has none) for up to the reconnect timeout.
   *
   * @throws ApprovalException.WaitTimedOutException when the request's {@code waitAtMost} ends
   *     first: the approval stays pending; request again with the exception's idempotency key
   * @throws ApprovalException on a refusal (e.g. {@link
   *     ApprovalException.InvalidArgumentException}) or when no replica answers
   */
  public Decision requestApproval(ApprovalRequest request) {
    ApprovalRequest attachable = withKey(request);
    var message = attachable.toProto(agentId);
    RequestApprovalResponse response =
        reattaching(
            attachable.waitLimit(),
            attachable.idempotencyKey(),
            calls -> calls.requestApproval(message));
    return new Decision(response.getApproval(), response.getApproved());
  }

  /**
   * Creates an approval (or finds the one with the same idempotency key) and returns at once. A
   * request without an idempotency key gets a made-up one, so that a retry after an ambiguous
   * failure returns the same approval instead of making a second.
   */
  public Approval createApproval(ApprovalRequest request) {
    var message = withKey(request).toCreateProto(agentId);
    return call(calls -> calls.createApproval(message).getApproval());
  }

  private static ApprovalRequest withKey(ApprovalRequest request) {
    return request.idempotencyKey().isEmpty()
        ? request.withIdempotencyKey(UUID.randomUUID().toString())
        : request;
  }

  /**
   * Blocks until the approval is final (at once if it already is), at most {@code wait} (null:
   * no limit), re-attaching after a lost connection.
   */
  public Decision awaitApproval(String id, Duration wait) {
    AwaitApprovalResponse response =
        reattaching(
            wait, "", calls -> calls.awaitApproval(AwaitApprovalRequest.newBuilder().setId(id).build()));
    return new Decision(response.getApproval(), response.getApproved());
  }

  /**
   * Records a human vote. With one required approval (the default) the first decision wins: a
   * conflicting one throws {@link ApprovalException.AlreadyDecidedException} naming the winner;
   * an identical retry succeeds. Under a policy needing several approvals the approval stays
   * PENDING (its votes growing) until {@code required_approvals} distinct voters approved; one
   * reject ends it. A voter's changed or second vote throws {@link
   * ApprovalException.AlreadyVotedException}.
   */
  public Approval respond(String id, boolean approve, String responder, String reason) {
    return respond(id, approve, responder, reason, "");
  }

  /**
   * {@link #respond(String, boolean, String, String)}, counted only for the context the human saw:
   * {@code expectedContextDigest} is the approval's {@code context_digest} as shown. When the
   * approval's is another, it throws {@link ApprovalException.ContextChangedException} and
   * nothing changes (empty: no check).
   */
  public Approval respond(
      String id, boolean approve, String responder, String reason, String expectedContextDigest) {
    RespondRequest request =
        RespondRequest.newBuilder()
            .setId(id)
            .setDecision(approve ? DECISION_APPROVE : DECISION_REJECT)
            .setResponder(responder)
            .setReason(reason)
            .setExpectedContextDigest(expectedContextDigest)
            .build();
    return call(calls -> calls.respond(request).getApproval());
  }

  /**
   * One approval by id, final or not.
   *
   * @throws ApprovalException.NotFoundException for an unknown id
   */
  public Approval getApproval(String id) {
    return call(calls -> calls.getApproval(GetApprovalRequest.newBuilder().setId(id).build()).getApproval());
  }

  /** Withdraws a pending approval; its waiter returns CANCELLED. */
  public Approval cancelApproval(String id, String reason) {
    CancelApprovalRequest request =
        CancelApprovalRequest.newBuilder().setId(id).setReason(reason).build();
    return call(calls -> calls.cancelApproval(request).getApproval());
  }

  /**
   * Every approval matching {@code filter}, newest first, fetched page after page as the
   * iteration goes ({@code filter.page_token} is ignored).
   */
  public Iterable<Approval> listApprovals(ListApprovalsRequest filter) {
    ListApprovalsRequest first = filter.toBuilder().clearPageToken().build();
    return () ->
        new Iterator<>() {
          private ListApprovalsRequest page = first;
          private Iterator<Approval> items = List.<Approval>of().iterator();
          private boolean more = true;

          @Override
          public boolean hasNext() {
            while (!items.hasNext() && more) {
              ListApprovalsRequest request = page;
              ListApprovalsResponse response = call(calls -> calls.listApprovals(request));
              items = response.getApprovalsList().iterator();
              more = !response.getNextPageToken().isEmpty();
              page = page.toBuilder().setPageToken(response.getNextPageToken()).build();
            }
            return items.hasNext();
          }

          @Override
          public Approval next() {
            if (!hasNext()) {
              throw new NoSuchElementException();
            }
            return items.next();
          }
        };
  }

  /**
   * Watches pending approvals matching {@code filter} (approval types, agent, labels; its cursor,
   * if set, resumes after an earlier event). Iterate the result; close it to stop.
   */
  public PendingWatch watchPending(WatchPendingRequest filter) {
    return new PendingWatch(api, filter, new ReconnectBudget(channel, reconnectTimeout));
  }

  /** Closes the connection (calls in flight are cancelled). */
  @Override
  public void close() {
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private <T> T call(Function<ApprovalApi, T> rpc) {
    try {
      return rpc.apply(api);
    } catch (StatusRuntimeException e) {
      throw ApprovalException.of(e);
    }
  }

  /**
   * Runs a blocking call until it succeeds, fails for another reason than a lost connection, or
   * {@code wait} ends. After UNAVAILABLE (network trouble, or a replica shutting down) it pauses
   * and repeats the call, which re-attaches by idempotency key or id, to any replica.
   */
  private <T> T reattaching(Duration wait, String idempotencyKey, Function<ApprovalApi, T> rpc) {
    Deadline waitEnds = wait == null ? null : Deadline.after(wait.toNanos(), TimeUnit.NANOSECONDS);
    ApprovalApi calls = waitEnds == null ? api : api.withOptions(api.options().withDeadline(waitEnds));
    ReconnectBudget budget = new ReconnectBudget(channel, reconnectTimeout);
    while (true) {
      long started = System.nanoTime();
      try {
        return rpc.apply(calls);
      } catch (StatusRuntimeException e) {
        Status.Code code = e.getStatus().getCode();
        if (code == Status.Code.DEADLINE_EXCEEDED) {
          throw new ApprovalException.WaitTimedOutException(idempotencyKey, e);
        }
        if (code != Status.Code.UNAVAILABLE) {
          throw ApprovalException.of(e);
        }
        // A call that ran a while had reached the service: a fresh loss.
        boolean fresh = System.nanoTime() - started >= TimeUnit.SECONDS.toNanos(1);
        budget.pauseAfterLoss(fresh, e, waitEnds);
      }
    }
  }

  /** Configures an {@link ApprovalGate}. */
  public static final class Builder {
    private final String target;
    private String agentId = "";
    private String bearerToken;
    private ChannelCredentials credentials;
    private String authority;
    private Duration reconnectTimeout = Duration.ofMinutes(1);
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder(String target) {
      this.target = Objects.requireNonNull(target, "target");
    }

    /** The agent that asks for approvals (sent as agent_id). */
    public Builder agentId(String agentId) {
      this.agentId = Objects.requireNonNull(agentId, "agentId");
      return this;
    }

    /** Sends {@code authorization: Bearer <token>} with every call. Use it with TLS. */
    public Builder bearerToken(String token) {
      this.bearerToken = Objects.requireNonNull(token, "token");
      return this;
    }

    /** TLS, trusting the system's certificate authorities. */
    public Builder tls() {
      this.credentials = TlsChannelCredentials.create();
      return this;
    }

    /** TLS, trusting the certificate authorities in this PEM file. */
    public Builder tlsTrusting(Path caCertificates) {
      try {
        this.credentials =
            TlsChannelCredentials.newBuilder().trustManager(caCertificates.toFile()).build();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      return this;
    }

    /** Any channel credentials, e.g. TLS with a client certificate (mutual TLS). */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = Objects.requireNonNull(credentials, "credentials");
      return this;
    }

    /** The name to check the server's certificate against, instead of the target's host. */
    public Builder overrideAuthority(String authority) {
      this.authority = authority;
      return this;
    }

    /**
     * How long a blocked call or a watch keeps trying to reach the service after losing its
     * connection (default one minute).
     */
    public Builder reconnectTimeout(Duration timeout) {
      this.reconnectTimeout = Objects.requireNonNull(timeout, "timeout");
      return this;
    }

    /**
     * Runs every call through these interceptors, e.g. OpenTelemetry's ({@code
     * GrpcTelemetry.create(openTelemetry).createClientInterceptor()}), which sends the caller's
     * current trace context as a W3C {@code traceparent}.
     */
    public Builder intercept(ClientInterceptor... interceptors) {
      for (ClientInterceptor i : interceptors) {
        this.interceptors.add(Objects.requireNonNull(i, "interceptor"));
      }
      return this;
    }

    public ApprovalGate build() {
      return new ApprovalGate(this);
    }
  }
}
