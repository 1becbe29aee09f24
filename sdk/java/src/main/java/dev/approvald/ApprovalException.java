package dev.approvald;

import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.approvald.approval.v1.ErrorMetadataKey;
import dev.approvald.approval.v1.ErrorReason;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.Locale;
import java.util.Map;

/**
 * A call to approvald failed. {@link #code()} is the gRPC status code; the subclasses carry what
 * the service said in its google.rpc error details.
 */
public class ApprovalException extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private final Status.Code code;

  public ApprovalException(Status.Code code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  /** The gRPC status code, e.g. {@code UNAVAILABLE}. */
  public Status.Code code() {
    return code;
  }

  /** The google.rpc.ErrorInfo reason of {@code r}: its name without the prefix (proto rule). */
  static String reason(ErrorReason r) {
    return r.name().substring("ERROR_REASON_".length());
  }

  /**
   * The google.rpc.ErrorInfo metadata key of {@code k}: its name without the prefix, in lowercase
   * (the proto's rule).
   */
  static String key(ErrorMetadataKey k) {
    return k.name().substring("ERROR_METADATA_KEY_".length()).toLowerCase(Locale.ROOT);
  }

  /** The typed exception for a failed call. */
  static ApprovalException of(StatusRuntimeException e) {
    Status.Code code = e.getStatus().getCode();
    String message = code + ": " + e.getStatus().getDescription();
    com.google.rpc.Status details = StatusProto.fromThrowable(e);
    switch (code) {
      case FAILED_PRECONDITION:
        ErrorInfo info = detail(details, ErrorInfo.class);
        if (info == null) {
          break;
        }
        if (info.getReason().equals(reason(ErrorReason.ERROR_REASON_ALREADY_FINAL))) {
          return new AlreadyDecidedException(message, info.getMetadataMap(), e);
        }
        if (info.getReason().equals(reason(ErrorReason.ERROR_REASON_ALREADY_VOTED))) {
          return new AlreadyVotedException(message, info.getMetadataMap(), e);
        }
        if (info.getReason().equals(reason(ErrorReason.ERROR_REASON_CONTEXT_DIGEST_MISMATCH))) {
          return new ContextChangedException(message, info.getMetadataMap(), e);
        }
        break;
      case INVALID_ARGUMENT:
        BadRequest bad = detail(details, BadRequest.class);
        String field =
            bad != null && bad.getFieldViolationsCount() > 0
                ? bad.getFieldViolations(0).getField()
                : "";
        return new InvalidArgumentException(message, field, e);
      case NOT_FOUND:
        return new NotFoundException(message, e);
      case UNAVAILABLE:
        return new UnavailableException(message, e);
      default:
        break;
    }
    return new ApprovalException(code, message, e);
  }

  private static <T extends com.google.protobuf.Message> T detail(
      com.google.rpc.Status status, Class<T> type) {
    if (status == null) {
      return null;
    }
    for (Any any : status.getDetailsList()) {
      if (any.is(type)) {
        try {
          return any.unpack(type);
        } catch (InvalidProtocolBufferException e) {
          return null;
        }
      }
    }
    return null;
  }

  /**
   * The approval was already final with another outcome (FAILED_PRECONDITION, reason
   * ALREADY_FINAL): the first decision wins, and this names it.
   */
  public static final class AlreadyDecidedException extends ApprovalException {
    private static final long serialVersionUID = 1L;
    private final String status;
    private final String decidedBy;
    private final String reason;
    private final String decidedAt;

    AlreadyDecidedException(String message, Map<String, String> winner, Throwable cause) {
      super(Status.Code.FAILED_PRECONDITION, message, cause);
      status = winner.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_STATUS), "");
      decidedBy = winner.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_DECIDED_BY), "");
      reason = winner.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_REASON), "");
      decidedAt = winner.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_DECIDED_AT), "");
    }

    /** How it ended: "approved", "rejected", "expired" or "cancelled". */
    public String status() {
      return status;
    }

    public String decidedBy() {
      return decidedBy;
    }

    public String reason() {
      return reason;
    }

    /** RFC 3339. */
    public String decidedAt() {
      return decidedAt;
    }
  }

  /**
   * This voter already voted otherwise on the pending approval (FAILED_PRECONDITION, reason
   * ALREADY_VOTED): a vote cannot be changed or cast twice; nothing changed.
   */
  public static final class AlreadyVotedException extends ApprovalException {
    private static final long serialVersionUID = 1L;
    private final String voter;
    private final String decision;

    AlreadyVotedException(String message, Map<String, String> metadata, Throwable cause) {
      super(Status.Code.FAILED_PRECONDITION, message, cause);
      voter = metadata.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_VOTER), "");
      decision = metadata.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_DECISION), "");
    }

    public String voter() {
      return voter;
    }

    /** The vote already cast: "approve" or "reject". */
    public String decision() {
      return decision;
    }
  }

  /**
   * The expected context digest given to {@code respond} is not the approval's
   * (FAILED_PRECONDITION, reason CONTEXT_DIGEST_MISMATCH): nothing changed.
   */
  public static final class ContextChangedException extends ApprovalException {
    private static final long serialVersionUID = 1L;
    private final String contextDigest;
    private final String expectedContextDigest;

    ContextChangedException(String message, Map<String, String> metadata, Throwable cause) {
      super(Status.Code.FAILED_PRECONDITION, message, cause);
      contextDigest =
          metadata.getOrDefault(key(ErrorMetadataKey.ERROR_METADATA_KEY_CONTEXT_DIGEST), "");
      expectedContextDigest =
          metadata.getOrDefault(
              key(ErrorMetadataKey.ERROR_METADATA_KEY_EXPECTED_CONTEXT_DIGEST), "");
    }

    /** The approval's digest. */
    public String contextDigest() {
      return contextDigest;
    }

    /** The one sent. */
    public String expectedContextDigest() {
      return expectedContextDigest;
    }
  }

  /** The request was refused (INVALID_ARGUMENT); {@link #field()} names the bad field. */
  public static final class InvalidArgumentException extends ApprovalException {
    private static final long serialVersionUID = 1L;
    private final String field;

    InvalidArgumentException(String message, String field, Throwable cause) {
      super(Status.Code.INVALID_ARGUMENT, message, cause);
      this.field = field;
    }

    public String field() {
      return field;
    }
  }

  /** No approval has this id (NOT_FOUND). */
  public static final class NotFoundException extends ApprovalException {
    private static final long serialVersionUID = 1L;

    NotFoundException(String message, Throwable cause) {
      super(Status.Code.NOT_FOUND, message, cause);
    }
  }

  /** No replica could be reached within the gate's reconnect timeout (UNAVAILABLE). */
  public static final class UnavailableException extends ApprovalException {
    private static final long serialVersionUID = 1L;

    UnavailableException(String message, Throwable cause) {
      super(Status.Code.UNAVAILABLE, message, cause);
    }
  }

  /**
   * The wait ended before a decision (DEADLINE_EXCEEDED): the approval stays pending. Request
   * again with {@link #idempotencyKey()} to re-attach to it.
   */
  public static final class WaitTimedOutException extends ApprovalException {
    private static final long serialVersionUID = 1L;
    private final String idempotencyKey;

    WaitTimedOutException(String idempotencyKey, Throwable cause) {
      super(
          Status.Code.DEADLINE_EXCEEDED,
          "the wait ended before a decision; the approval stays pending (idempotency key "
              + idempotencyKey
              + ")",
          cause);
      this.idempotencyKey = idempotencyKey;
    }

    public String idempotencyKey() {
      return idempotencyKey;
    }
  }
}
