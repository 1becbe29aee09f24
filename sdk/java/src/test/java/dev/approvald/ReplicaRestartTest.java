package dev.approvald;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.ApprovalStatus;
import dev.approvald.approval.v1.ListApprovalsRequest;
import dev.approvald.approval.v1.WatchPendingRequest;
import java.time.Duration;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Replicas that go away, as in a rolling update: a replica stopped with SIGTERM, then the next one
 * started on the same address (one Kubernetes Service), while a call waits on it and while a
 * watch reads from it; and a resume cursor that the event log trimmed away. The gates here are
 * given one address only, so what they prove is the SDK's own re-attach and resume.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ReplicaRestartTest {
  private final ExecutorService background = Executors.newCachedThreadPool();
  private ApprovalGate human;
  private String type;

  @BeforeEach
  void connect() {
    human = Live.gate(Live.addrB(), "java-human");
    type = Live.uniqueType();
  }

  @AfterEach
  void disconnect() {
    background.shutdownNow();
    human.close();
  }

  /** The watch's next event, failing the test when none comes within 30 s. */
  private WatchEvent next(PendingWatch watch) throws Exception {
    Future<WatchEvent> event = background.submit(watch::next);
    try {
      return event.get(30, TimeUnit.SECONDS);
    } catch (TimeoutException e) {
      watch.close();
      return fail("no watch event within 30 s");
    } catch (ExecutionException e) {
      return fail("the watch failed", e.getCause());
    }
  }

  private void expect(PendingWatch watch, WatchEvent.Kind kind, String id) throws Exception {
    WatchEvent event = next(watch);
    String got = event.kind() + " " + (event.approval() == null ? "" : event.approval().getId());
    assertEquals(kind + " " + (id == null ? "" : id), got, "the watch's next event");
  }

  private Approval create(ApprovalGate gate) {
    return gate.createApproval(ApprovalRequest.builder(type).build());
  }

  @Test
  void aRequestWaitingOnAStoppedReplicaFinishesOnTheNextOneAtTheSameAddress() throws Exception {
    String addr = "127.0.0.1:" + Live.freePort();
    String prefix = Live.env("APPROVALD_REDIS_PREFIX");
    Live.Replica first = Live.Replica.on(addr, prefix);
    try (ApprovalGate agent = Live.gate(addr, "java-agent")) {
      Future<Decision> waiting =
          background.submit(() -> agent.requestApproval(ApprovalRequest.builder(type).build()));
      Approval pending =
          Live.eventually(
              Duration.ofSeconds(20),
              () -> {
                for (Approval a :
                    human.listApprovals(
                        ListApprovalsRequest.newBuilder().addApprovalTypes(type).build())) {
                  return a;
                }
                return null;
              });
      first.close(); // SIGTERM: the waiter is told UNAVAILABLE and tries again
      assertFalse(waiting.isDone(), "the call must still be waiting while no replica answers");
      Live.Replica next = Live.Replica.on(addr, prefix);
      try {
        human.respond(pending.getId(), true, "alice", "after the restart");
        Decision decision = waiting.get(60, TimeUnit.SECONDS);
        assertTrue(decision.approved());
        assertEquals(pending.getId(), decision.id());
        assertEquals("alice", decision.decidedBy());
        assertEquals("after the restart", decision.reason());
      } finally {
        next.close();
      }
    } finally {
      first.close();
    }
  }

  @Test
  void aWatchResumesByItselfFromItsLastCursorAfterItsReplicaStopsWithNoGapAndNoDuplicate()
      throws Exception {
    String addr = "127.0.0.1:" + Live.freePort();
    String prefix = Live.env("APPROVALD_REDIS_PREFIX");
    Live.Replica first = Live.Replica.on(addr, prefix);
    Approval before = create(human);
    try (ApprovalGate watcher = Live.gate(addr, "java-watcher");
        PendingWatch watch =
            watcher.watchPending(WatchPendingRequest.newBuilder().addApprovalTypes(type).build())) {
      expect(watch, WatchEvent.Kind.ADDED, before.getId());
      expect(watch, WatchEvent.Kind.SYNCED, null);
      Approval live = create(human);
      expect(watch, WatchEvent.Kind.ADDED, live.getId());
      String lastCursor = watch.cursor();
      assertFalse(lastCursor.isEmpty());

      first.close();
      // While the watcher's replica is gone; each must arrive exactly once, in order, after the
      // last cursor: no reset, no second snapshot.
      human.respond(before.getId(), true, "alice", "");
      Approval second = create(human);
      human.cancelApproval(live.getId(), "superseded");
      Live.Replica next = Live.Replica.on(addr, prefix);
      try {
        expect(watch, WatchEvent.Kind.RESOLVED, before.getId());
        expect(watch, WatchEvent.Kind.ADDED, second.getId());
        WatchEvent cancelled = next(watch);
        assertEquals(WatchEvent.Kind.RESOLVED, cancelled.kind());
        assertEquals(live.getId(), cancelled.approval().getId());
        assertEquals(ApprovalStatus.APPROVAL_STATUS_CANCELLED, cancelled.approval().getStatus());
        assertFalse(cancelled.cursor().isEmpty());
        assertEquals(cancelled.cursor(), watch.cursor());

        // Nothing more: the next event is one made now.
        Approval third = create(human);
        expect(watch, WatchEvent.Kind.ADDED, third.getId());
      } finally {
        next.close();
      }
    } finally {
      first.close();
    }
  }

  @Test
  void aCursorTrimmedFromTheEventLogGivesResetAndAFreshSnapshotResumedByItselfOrByHand()
      throws Exception {
    // A store of its own whose event log keeps 3 events, on two replicas: the watched one and
    // one that goes on taking calls while the first is down.
    String prefix = "java-trim-" + System.nanoTime();
    String addr = "127.0.0.1:" + Live.freePort();
    Live.Replica watched = Live.Replica.on(addr, prefix, "--event-log-cap", "3");
    try (Live.Replica other =
            Live.Replica.on("127.0.0.1:" + Live.freePort(), prefix, "--event-log-cap", "3");
        ApprovalGate agent = Live.gate(other.addr, "java-trim");
        ApprovalGate watcher = Live.gate(addr, "java-trim-watcher")) {
      WatchPendingRequest filter = WatchPendingRequest.newBuilder().addApprovalTypes(type).build();
      String trimmedCursor;
      Approval kept;
      Approval after;
      try (PendingWatch watch = watcher.watchPending(filter)) {
        expect(watch, WatchEvent.Kind.SYNCED, null);
        kept = create(agent);
        expect(watch, WatchEvent.Kind.ADDED, kept.getId());
        trimmedCursor = watch.cursor();

        watched.close();
        // 160 events while the watch cannot resume (Redis trims by nodes of 100 entries).
        for (int i = 0; i < 80; i++) {
          agent.cancelApproval(create(agent).getId(), "churn");
        }
        Live.Replica restarted = Live.Replica.on(addr, prefix, "--event-log-cap", "3");
        try {
          // Resumed by itself with a cursor the log no longer has: reset, then the snapshot.
          expect(watch, WatchEvent.Kind.RESET, null);
          assertEquals("", watch.cursor());
          expect(watch, WatchEvent.Kind.ADDED, kept.getId());
          expect(watch, WatchEvent.Kind.SYNCED, null);
          after = create(agent);
          expect(watch, WatchEvent.Kind.ADDED, after.getId());
        } finally {
          restarted.close();
        }
      }

      // The same cursor passed by hand, on the replica that never stopped.
      try (PendingWatch byHand =
          agent.watchPending(filter.toBuilder().setCursor(trimmedCursor).build())) {
        expect(byHand, WatchEvent.Kind.RESET, null);
        expect(byHand, WatchEvent.Kind.ADDED, kept.getId());
        expect(byHand, WatchEvent.Kind.ADDED, after.getId());
        expect(byHand, WatchEvent.Kind.SYNCED, null);
      }
    } finally {
      watched.close();
    }
  }
}
