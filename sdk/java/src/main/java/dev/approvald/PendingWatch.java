package dev.approvald;

import dev.approvald.approval.v1.WatchPendingRequest;
import dev.approvald.approval.v1.WatchPendingResponse;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Iterator;
import java.util.NoSuchElementException;

/**
 * The events of {@link ApprovalGate#watchPending}: the pending snapshot (ADDED with empty
 * cursors), SYNCED, then live ADDED, UPDATED and RESOLVED events, for as long as it stays open. A
 * lost stream is resumed from the last cursor, on any replica, with no gap and no duplicate.
 * {@code hasNext()} blocks until the next event; close it (from any thread) to stop.
 */
public final class PendingWatch implements Iterator<WatchEvent>, Iterable<WatchEvent>, AutoCloseable {
  private final ApprovalApi api;
  private final ReconnectBudget budget;
  private WatchPendingRequest request;
  private boolean yieldedWithoutCursor;
  private volatile Context.CancellableContext streamContext;
  private Iterator<WatchPendingResponse> stream;
  private boolean receivedOnStream;
  private WatchEvent next;
  private volatile boolean closed;

  PendingWatch(ApprovalApi api, WatchPendingRequest request, ReconnectBudget budget) {
    this.api = api;
    this.request = request;
    this.budget = budget;
  }

  /** Where to resume later ({@code WatchPendingRequest.cursor}); empty before the first one. */
  public synchronized String cursor() {
    return request.getCursor();
  }

  @Override
  public Iterator<WatchEvent> iterator() {
    return this;
  }

  @Override
  public synchronized boolean hasNext() {
    while (next == null && !closed) {
      next = fetch();
    }
    return next != null;
  }

  @Override
  public synchronized WatchEvent next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the watch is closed");
    }
    WatchEvent event = next;
    next = null;
    return event;
  }

  /** Stops the stream; a blocked {@code hasNext()} returns false. */
  @Override
  public void close() {
    closed = true;
    Context.CancellableContext context = streamContext;
    if (context != null) {
      context.cancel(null);
    }
  }

  /**
   * The next event, or null when the stream was (re)opened without one yet or sent a kind this SDK
   * does not know.
   */
  private WatchEvent fetch() {
    try {
      if (stream == null) {
        open();
      }
      if (stream.hasNext()) {
        receivedOnStream = true;
        return eventOf(stream.next());
      }
      // The server ended the stream (a replica shutting down): a lost stream.
      return lost(Status.UNAVAILABLE.withDescription("the stream ended").asRuntimeException());
    } catch (StatusRuntimeException e) {
      if (closed) {
        return null;
      }
      return lost(e);
    }
  }

  private void open() {
    Context.CancellableContext context = Context.current().withCancellation();
    streamContext = context;
    receivedOnStream = false;
    Context previous = context.attach();
    try {
      stream = api.watchPending(request);
    } finally {
      context.detach(previous);
    }
    if (closed) {
      context.cancel(null);
    }
  }

  private WatchEvent eventOf(WatchPendingResponse response) {
    String cursor = response.getCursor();
    if (cursor.isEmpty()) {
      yieldedWithoutCursor = true;
    } else {
      request = request.toBuilder().setCursor(cursor).build();
    }
    switch (response.getEventCase()) {
      case ADDED:
        return new WatchEvent(WatchEvent.Kind.ADDED, response.getAdded(), cursor);
      case UPDATED:
        return new WatchEvent(WatchEvent.Kind.UPDATED, response.getUpdated(), cursor);
      case RESOLVED:
        return new WatchEvent(WatchEvent.Kind.RESOLVED, response.getResolved(), cursor);
      case SYNCED:
        return new WatchEvent(WatchEvent.Kind.SYNCED, null, cursor);
      default:
        return null; // an event kind newer than this SDK: skipped (its cursor is kept)
    }
  }

  /**
   * After the stream failed: RESET (and start over) when the resume point is gone, wait and
   * reopen when the connection was lost, or give up.
   */
  private WatchEvent lost(StatusRuntimeException e) {
    streamContext.cancel(null);
    stream = null;
    Status.Code code = e.getStatus().getCode();
    boolean connectionLost = code == Status.Code.UNAVAILABLE;
    if (!connectionLost && code != Status.Code.OUT_OF_RANGE) {
      close();
      throw ApprovalException.of(e);
    }
    if (code == Status.Code.OUT_OF_RANGE || request.getCursor().isEmpty() && yieldedWithoutCursor) {
      request = request.toBuilder().clearCursor().build();
      yieldedWithoutCursor = false;
      if (connectionLost) {
        budget.pauseAfterLoss(receivedOnStream, e);
      }
      return new WatchEvent(WatchEvent.Kind.RESET, null, "");
    }
    budget.pauseAfterLoss(receivedOnStream, e);
    return null;
  }
}
