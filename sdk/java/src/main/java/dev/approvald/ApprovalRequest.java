package dev.approvald;

import com.google.protobuf.Struct;
import dev.approvald.approval.v1.CreateApprovalRequest;
import dev.approvald.approval.v1.RequestApprovalRequest;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/** A new approval: {@code ApprovalRequest.builder("deploy:production").context(...).build()}. */
public final class ApprovalRequest {
  private final String approvalType;
  private final Struct context;
  private final Map<String, String> labels;
  private final Duration timeout;
  private final String idempotencyKey;
  private final Duration wait;

  private ApprovalRequest(Builder b) {
    approvalType = b.approvalType;
    context = b.context;
    labels = Map.copyOf(b.labels);
    timeout = b.timeout;
    idempotencyKey = b.idempotencyKey;
    wait = b.wait;
  }

  /** {@code approvalType}: what kind of action this gates, e.g. "deploy:production". */
  public static Builder builder(String approvalType) {
    return new Builder(approvalType);
  }

  public String approvalType() {
    return approvalType;
  }

  /** The key that attaches calls to one approval; empty when none was given. */
  public String idempotencyKey() {
    return idempotencyKey;
  }

  /** How long {@link ApprovalGate#requestApproval} waits at most; null: until final. */
  public Duration waitLimit() {
    return wait;
  }

  /** The same request with this idempotency key. */
  public ApprovalRequest withIdempotencyKey(String key) {
    return new Builder(this).idempotencyKey(key).build();
  }

  RequestApprovalRequest toProto(String agentId) {
    RequestApprovalRequest.Builder m =
        RequestApprovalRequest.newBuilder()
            .setApprovalType(approvalType)
            .setAgentId(agentId)
            .putAllLabels(labels)
            .setIdempotencyKey(idempotencyKey);
    if (context != null) {
      m.setContext(context);
    }
    if (timeout != null) {
      m.setTimeout(
          com.google.protobuf.Duration.newBuilder()
              .setSeconds(timeout.getSeconds())
              .setNanos(timeout.getNano()));
    }
    return m.build();
  }

  CreateApprovalRequest toCreateProto(String agentId) {
    RequestApprovalRequest r = toProto(agentId);
    CreateApprovalRequest.Builder m =
        CreateApprovalRequest.newBuilder()
            .setApprovalType(r.getApprovalType())
            .setAgentId(r.getAgentId())
            .putAllLabels(r.getLabelsMap())
            .setIdempotencyKey(r.getIdempotencyKey());
    if (r.hasContext()) {
      m.setContext(r.getContext());
    }
    if (r.hasTimeout()) {
      m.setTimeout(r.getTimeout());
    }
    return m.build();
  }

  /** Builds an {@link ApprovalRequest}. */
  public static final class Builder {
    private final String approvalType;
    private Struct context;
    private final Map<String, String> labels = new LinkedHashMap<>();
    private Duration timeout;
    private String idempotencyKey = "";
    private Duration wait;

    private Builder(String approvalType) {
      this.approvalType = Objects.requireNonNull(approvalType, "approvalType");
    }

    private Builder(ApprovalRequest r) {
      approvalType = r.approvalType;
      context = r.context;
      labels.putAll(r.labels);
      timeout = r.timeout;
      idempotencyKey = r.idempotencyKey;
      wait = r.wait;
    }

    /**
     * Shown to the human: JSON-like values (null, Boolean, Number, String, Map with String keys,
     * Iterable or array of those).
     */
    public Builder context(Map<String, ?> context) {
      this.context = Structs.toStruct(context);
      return this;
    }

    /** Shown to the human, as a protobuf Struct. */
    public Builder context(Struct context) {
      this.context = context;
      return this;
    }

    /** A label, for filtering. */
    public Builder label(String key, String value) {
      labels.put(key, value);
      return this;
    }

    public Builder labels(Map<String, String> labels) {
      this.labels.putAll(labels);
      return this;
    }

    /**
     * How long the approval stays open (the server's default when not set, 300 s). At its end the
     * approval is EXPIRED and not approved.
     */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /**
     * Calls with the same agent and idempotency key attach to one approval. {@link
     * ApprovalGate#requestApproval} makes one up when none is given, to re-attach after a lost
     * connection.
     */
    public Builder idempotencyKey(String idempotencyKey) {
      this.idempotencyKey = Objects.requireNonNull(idempotencyKey, "idempotencyKey");
      return this;
    }

    /**
     * Bounds how long {@link ApprovalGate#requestApproval} blocks (the gRPC deadline of the
     * call). When it ends first the call throws {@link
     * ApprovalException.WaitTimedOutException} and the approval stays pending.
     */
    public Builder waitAtMost(Duration wait) {
      this.wait = wait;
      return this;
    }

    public ApprovalRequest build() {
      return new ApprovalRequest(this);
    }
  }
}
