package dev.approvald;

import io.grpc.ConnectivityState;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * How long a blocked call or a watch keeps trying to reach the service after losing its
 * connection: {@code timeout} from the first loss, counted afresh after a call that had reached
 * the service again, with growing pauses (0.1 s to 2 s) between tries. Each try first cuts
 * short the channel's own reconnect backoff (which grows to two minutes), so that a replica that
 * comes back is found within a pause.
 */
final class ReconnectBudget {
  private static final long FIRST_PAUSE_MILLIS = 100;
  private static final long LONGEST_PAUSE_MILLIS = 2000;
  private final ManagedChannel channel;
  private final Duration timeout;
  private Deadline ends;
  private long pauseMillis;

  ReconnectBudget(ManagedChannel channel, Duration timeout) {
    this.channel = channel;
    this.timeout = timeout;
  }

  /**
   * Pauses before the next try. {@code fresh}: the lost call had reached the service, so this is
   * a new loss. Throws {@link ApprovalException.UnavailableException} once the budget is spent.
   */
  void pauseAfterLoss(boolean fresh, StatusRuntimeException cause) {
    pauseAfterLoss(fresh, cause, null);
  }

  /** As above, pausing no longer than until {@code waitEnds} (the caller's own deadline). */
  void pauseAfterLoss(boolean fresh, StatusRuntimeException cause, Deadline waitEnds) {
    if (fresh || ends == null) {
      ends = Deadline.after(timeout.toNanos(), TimeUnit.NANOSECONDS);
      pauseMillis = FIRST_PAUSE_MILLIS;
    }
    if (ends.isExpired()) {
      throw new ApprovalException.UnavailableException(
          "UNAVAILABLE: no connection to approvald within " + timeout + ": " + cause.getStatus(),
          cause);
    }
    long pause = Math.min(pauseMillis, ends.timeRemaining(TimeUnit.MILLISECONDS));
    if (waitEnds != null) {
      pause = Math.min(pause, waitEnds.timeRemaining(TimeUnit.MILLISECONDS));
    }
    pauseMillis = Math.min(2 * pauseMillis, LONGEST_PAUSE_MILLIS);
    try {
      Thread.sleep(Math.max(pause, 0));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApprovalException(Status.Code.CANCELLED, "interrupted", e);
    }
    if (channel.getState(true) == ConnectivityState.TRANSIENT_FAILURE) {
      channel.resetConnectBackoff();
    }
  }
}
