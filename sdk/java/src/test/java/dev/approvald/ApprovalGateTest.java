package dev.approvald;

import static dev.approvald.Live.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.ApprovalStatus;
import dev.approvald.approval.v1.ListApprovalsRequest;
import dev.approvald.approval.v1.WatchPendingRequest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ApprovalGateTest {
  private final ExecutorService background = Executors.newCachedThreadPool();
  private ApprovalGate agent;
  private ApprovalGate human;
  private String type;

  @BeforeEach
  void connect() {
    agent = Live.gate(Live.addrA(), "java-agent");
    human = Live.gate(Live.addrB(), "java-human");
    type = Live.uniqueType();
  }

  @AfterEach
  void disconnect() {
    background.shutdownNow();
    agent.close();
    human.close();
  }

  private Approval pendingOf(String approvalType) {
    ListApprovalsRequest filter =
        ListApprovalsRequest.newBuilder()
            .addStatuses(ApprovalStatus.APPROVAL_STATUS_PENDING)
            .addApprovalTypes(approvalType)
            .build();
    return eventually(
        Duration.ofSeconds(20),
        () -> {
          for (Approval a : human.listApprovals(filter)) {
            return a;
          }
          return null;
        });
  }

  @Test
  void requestApprovalReturnsTheDecisionMadeOnAnotherReplica() throws Exception {
    Future<Decision> waiting =
        background.submit(
            () ->
                agent.requestApproval(
                    ApprovalRequest.builder(type)
                        .context(Map.of("version", "2.0.0", "changes", List.of("a", "b")))
                        .label("team", "java")
                        .build()));
    Approval pending = pendingOf(type);
    assertEquals("java-agent", pending.getAgentId());
    assertEquals("2.0.0", pending.getContext().getFieldsOrThrow("version").getStringValue());
    assertEquals("java", pending.getLabelsOrThrow("team"));

    human.respond(pending.getId(), true, "alice", "looks good");

    Decision decision = waiting.get(20, TimeUnit.SECONDS);
    assertTrue(decision.approved());
    assertEquals(ApprovalStatus.APPROVAL_STATUS_APPROVED, decision.status());
    assertEquals("alice", decision.decidedBy());
    assertEquals("looks good", decision.reason());
    assertEquals(pending.getId(), decision.id());
  }

  @Test
  void requestApprovalHonoursItsWaitAndReattachesByIdempotencyKey() throws Exception {
    ApprovalRequest request =
        ApprovalRequest.builder(type).waitAtMost(Duration.ofMillis(500)).build();
    ApprovalException.WaitTimedOutException timedOut =
        assertThrows(
            ApprovalException.WaitTimedOutException.class, () -> agent.requestApproval(request));
    assertFalse(timedOut.idempotencyKey().isEmpty());
    Approval pending = pendingOf(type);
    assertEquals(timedOut.idempotencyKey(), pending.getIdempotencyKey());

    Future<Decision> again =
        background.submit(
            () ->
                agent.requestApproval(
                    ApprovalRequest.builder(type)
                        .idempotencyKey(timedOut.idempotencyKey())
                        .waitAtMost(Duration.ofSeconds(30))
                        .build()));
    Live.sleep(Duration.ofMillis(300));
    human.respond(pending.getId(), false, "bob", "not now");
    Decision decision = again.get(20, TimeUnit.SECONDS);
    assertFalse(decision.approved());
    assertEquals(ApprovalStatus.APPROVAL_STATUS_REJECTED, decision.status());
    assertEquals(pending.getId(), decision.id());
  }

  @Test
  void anExpiredApprovalIsNotApprovedAndSaysWhy() {
    Decision decision =
        agent.requestApproval(ApprovalRequest.builder(type).timeout(Duration.ofSeconds(1)).build());
    assertFalse(decision.approved());
    assertEquals(ApprovalStatus.APPROVAL_STATUS_EXPIRED, decision.status());
    assertFalse(decision.reason().isEmpty());
  }

  @Test
  void createWithoutKeyOrTimeoutSendsAMadeUpKeyAndGetsTheServersDefault() {
    long want = Long.parseLong(Live.env("APPROVALD_DEFAULT_TIMEOUT_SECONDS"));
    Approval a = agent.createApproval(ApprovalRequest.builder(type).build());
    Approval b = agent.createApproval(ApprovalRequest.builder(type).build());
    assertEquals(36, a.getIdempotencyKey().length(), a.getIdempotencyKey());
    assertFalse(a.getIdempotencyKey().equals(b.getIdempotencyKey()));
    assertFalse(a.getId().equals(b.getId()));
    long open = a.getDeadline().getSeconds() - a.getCreatedAt().getSeconds();
    assertTrue(Math.abs(open - want) <= 1, "deadline " + open + "s after creation, default " + want);
  }

  @Test
  void aConflictingResponseIsRefusedAndNamesTheWinner() {
    Approval created = agent.createApproval(ApprovalRequest.builder(type).build());
    human.respond(created.getId(), true, "alice", "ship it");
    // An identical retry is fine.
    assertEquals(
        ApprovalStatus.APPROVAL_STATUS_APPROVED,
        human.respond(created.getId(), true, "alice", "ship it").getStatus());

    ApprovalException.AlreadyDecidedException refused =
        assertThrows(
            ApprovalException.AlreadyDecidedException.class,
            () -> agent.respond(created.getId(), false, "mallory", "no"));
    assertEquals("alice", refused.decidedBy());
    assertEquals("approved", refused.status().toLowerCase());
    assertEquals("ship it", refused.reason());
    assertFalse(refused.decidedAt().isEmpty());
    assertEquals(io.grpc.Status.Code.FAILED_PRECONDITION, refused.code());
    assertEquals("alice", human.getApproval(created.getId()).getDecidedBy());
  }

  @Test
  void badInputAndUnknownIdsAreRefusedPrecisely() {
    ApprovalException.InvalidArgumentException invalid =
        assertThrows(
            ApprovalException.InvalidArgumentException.class,
            () -> agent.createApproval(ApprovalRequest.builder("no spaces allowed").build()));
    assertEquals("approval_type", invalid.field());

    Approval created = agent.createApproval(ApprovalRequest.builder(type).build());
    ApprovalException.InvalidArgumentException noResponder =
        assertThrows(
            ApprovalException.InvalidArgumentException.class,
            () -> human.respond(created.getId(), true, "", "ok"));
    assertEquals("responder", noResponder.field());

    assertThrows(
        ApprovalException.NotFoundException.class,
        () -> human.getApproval("01890a5d-ac96-774b-bcce-b302099a8057"));
  }

  @Test
  void cancellingEndsTheWaiterWithCancelled() throws Exception {
    ApprovalRequest request = ApprovalRequest.builder(type).build();
    Future<Decision> waiting = background.submit(() -> agent.requestApproval(request));
    Approval pending = pendingOf(type);
    agent.cancelApproval(pending.getId(), "no longer needed");
    Decision decision = waiting.get(20, TimeUnit.SECONDS);
    assertFalse(decision.approved());
    assertEquals(ApprovalStatus.APPROVAL_STATUS_CANCELLED, decision.status());
    assertEquals("no longer needed", decision.reason());
  }

  @Test
  void watchPendingGivesSnapshotSyncedLiveEventsAndResumesByCursorOnAnotherReplica()
      throws Exception {
    Approval before = agent.createApproval(ApprovalRequest.builder(type).build());
    WatchPendingRequest filter = WatchPendingRequest.newBuilder().addApprovalTypes(type).build();
    String cursor;
    try (PendingWatch watch = human.watchPending(filter)) {
      WatchEvent snapshot = watch.next();
      assertEquals(WatchEvent.Kind.ADDED, snapshot.kind());
      assertEquals(before.getId(), snapshot.approval().getId());
      assertEquals("", snapshot.cursor());
      assertEquals(WatchEvent.Kind.SYNCED, watch.next().kind());

      Approval live = agent.createApproval(ApprovalRequest.builder(type).build());
      WatchEvent added = watch.next();
      assertEquals(WatchEvent.Kind.ADDED, added.kind());
      assertEquals(live.getId(), added.approval().getId());
      assertFalse(added.cursor().isEmpty());
      cursor = watch.cursor();
      assertEquals(added.cursor(), cursor);

      human.respond(live.getId(), true, "alice", "ok");
      WatchEvent resolved = watch.next();
      assertEquals(WatchEvent.Kind.RESOLVED, resolved.kind());
      assertEquals(ApprovalStatus.APPROVAL_STATUS_APPROVED, resolved.approval().getStatus());
    }

    // Resuming after `added`, on the other replica, gives exactly what came after it.
    try (PendingWatch resumed = agent.watchPending(filter.toBuilder().setCursor(cursor).build())) {
      WatchEvent next = resumed.next();
      assertEquals(WatchEvent.Kind.RESOLVED, next.kind());
    }
  }

  @Test
  void closingAWatchFromAnotherThreadEndsItsIteration() throws Exception {
    PendingWatch watch =
        human.watchPending(WatchPendingRequest.newBuilder().addApprovalTypes(type).build());
    assertEquals(WatchEvent.Kind.SYNCED, watch.next().kind());
    CompletableFuture<Boolean> more = CompletableFuture.supplyAsync(watch::hasNext, background);
    Live.sleep(Duration.ofMillis(300));
    watch.close();
    assertFalse(more.get(10, TimeUnit.SECONDS));
  }

  @Test
  void listApprovalsPagesThroughEveryMatch() {
    Set<String> created = new HashSet<>();
    for (int i = 0; i < 7; i++) {
      created.add(agent.createApproval(ApprovalRequest.builder(type).build()).getId());
    }
    List<String> listed = new ArrayList<>();
    human
        .listApprovals(ListApprovalsRequest.newBuilder().addApprovalTypes(type).setPageSize(3).build())
        .forEach(a -> listed.add(a.getId()));
    assertEquals(7, listed.size());
    assertEquals(created, new HashSet<>(listed));
  }

  @Test
  void aBlockedRequestReattachesToAnotherReplicaWhenItsReplicaShutsDown() throws Exception {
    try (Live.Replica extra = new Live.Replica();
        ApprovalGate failover =
            ApprovalGate.builder(extra.addr + "," + Live.addrB()).agentId("java-failover").build()) {
      Future<Decision> waiting =
          background.submit(() -> failover.requestApproval(ApprovalRequest.builder(type).build()));
      Approval pending = pendingOf(type);
      extra.stop(); // SIGTERM: its waiters get UNAVAILABLE and re-attach to B
      Live.sleep(Duration.ofMillis(500));
      human.respond(pending.getId(), true, "alice", "after failover");
      Decision decision = waiting.get(30, TimeUnit.SECONDS);
      assertTrue(decision.approved());
      assertEquals(pending.getId(), decision.id());
      assertEquals("after failover", decision.reason());
    }
  }

  @Test
  void aWatchGoesOnOnAnotherReplicaWhenItsReplicaShutsDown() throws Exception {
    WatchPendingRequest filter = WatchPendingRequest.newBuilder().addApprovalTypes(type).build();
    try (Live.Replica extra = new Live.Replica();
        ApprovalGate failover =
            ApprovalGate.builder(extra.addr + "," + Live.addrB()).agentId("java-failover").build();
        PendingWatch watch = failover.watchPending(filter)) {
      assertEquals(WatchEvent.Kind.SYNCED, watch.next().kind());
      Approval first = agent.createApproval(ApprovalRequest.builder(type).build());
      assertEquals(first.getId(), watch.next().approval().getId());

      extra.stop();
      Approval second = agent.createApproval(ApprovalRequest.builder(type).build());
      // Resumed by cursor on B: exactly the event missed, no snapshot again.
      WatchEvent next = watch.next();
      assertEquals(WatchEvent.Kind.ADDED, next.kind());
      assertEquals(second.getId(), next.approval().getId());
      assertFalse(next.cursor().isEmpty());
    }
  }
}
