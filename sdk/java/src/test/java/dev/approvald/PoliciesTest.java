package dev.approvald;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.ApprovalStatus;
import dev.approvald.approval.v1.OnTimeout;
import dev.approvald.approval.v1.Vote;
import dev.approvald.approval.v1.WatchPendingRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Policies seen from Java, against an approvald of the test's own reading a policy file: two
 * votes from two responders approve (both listed), each vote before the last is an UPDATED watch
 * event with a resumable cursor, a changed vote or a stale context digest is refused, and an
 * on_timeout = "approve" policy lets the gate proceed at the deadline.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PoliciesTest {
  static final String POLICIES =
      """
      [[policies]]
      approval_types = ["java-vote:*"]
      required_approvals = 2

      [[policies]]
      approval_types = ["java-quiet:*"]
      on_timeout = "approve"
      default_timeout = "1s"
      """;

  private static Path config;
  private static Live.Replica server;
  private final ExecutorService background = Executors.newCachedThreadPool();

  /** An approvald on the suite's Redis under a prefix of its own, reading {@code policies}. */
  static Live.Replica startWithPolicies(Path config, String policies) throws Exception {
    Files.writeString(config, policies);
    return Live.Replica.on(
        "127.0.0.1:" + Live.freePort(),
        "java-policies-" + UUID.randomUUID(),
        "--config",
        config.toString());
  }

  @BeforeAll
  static void start() throws Exception {
    config = Files.createTempFile("approvald-policies", ".toml");
    server = startWithPolicies(config, POLICIES);
  }

  @AfterAll
  static void stop() throws Exception {
    if (server != null) {
      server.close();
    }
    Files.deleteIfExists(config);
  }

  private static List<String> voters(List<Vote> votes) {
    return votes.stream().map(Vote::getVoter).toList();
  }

  private static String type(String policy) {
    return policy + ":" + UUID.randomUUID().toString().substring(0, 12);
  }

  @Test
  void twoVotesFromTwoRespondersApproveWithBothVotesListedAndAChangedVoteIsRefused()
      throws Exception {
    try (ApprovalGate agent = Live.gate(server.addr, "java-agent");
        ApprovalGate human = Live.gate(server.addr, "java-human")) {
      Approval created =
          agent.createApproval(
              ApprovalRequest.builder(type("java-vote"))
                  .context(Map.of("version", "2.4.1"))
                  .build());
      assertEquals(2, created.getRequiredApprovals());
      assertEquals("java-vote:*", created.getPolicy().getName());
      assertTrue(
          created.getContextDigest().matches("sha256:[0-9a-f]{64}"), created.getContextDigest());
      CompletableFuture<Decision> waiting =
          CompletableFuture.supplyAsync(
              () -> agent.awaitApproval(created.getId(), null), background);

      Approval one =
          human.respond(created.getId(), true, "alice", "diff read", created.getContextDigest());
      assertEquals(ApprovalStatus.APPROVAL_STATUS_PENDING, one.getStatus(), "one approval of two");
      assertEquals(1, one.getVotesCount());
      Vote first = one.getVotes(0);
      assertEquals("alice", first.getVoter());
      assertEquals(dev.approvald.approval.v1.Decision.DECISION_APPROVE, first.getDecision());
      assertEquals("diff read", first.getReason());
      assertTrue(first.hasVotedAt(), "a vote has its time");
      ApprovalException.AlreadyVotedException changed =
          assertThrows(
              ApprovalException.AlreadyVotedException.class,
              () -> human.respond(created.getId(), false, "alice", "second thoughts"));
      assertEquals("alice", changed.voter());
      assertEquals("approve", changed.decision());

      human.respond(created.getId(), true, "bob", "");
      Decision decision = waiting.get(30, TimeUnit.SECONDS);
      assertTrue(decision.approved());
      assertEquals(ApprovalStatus.APPROVAL_STATUS_APPROVED, decision.status());
      assertEquals("bob", decision.decidedBy());
      assertEquals(List.of("alice", "bob"), voters(decision.votes()));
      assertEquals(2, decision.requiredApprovals());
    } finally {
      background.shutdownNow();
    }
  }

  @Test
  void aStaleContextDigestIsRefusedAndTheVoteIsNotRecorded() {
    try (ApprovalGate c = Live.gate(server.addr, "java-agent")) {
      Approval created =
          c.createApproval(
              ApprovalRequest.builder(type("java-vote")).context(Map.of("rows", 3)).build());
      String stale = "sha256:" + "0".repeat(64);
      ApprovalException.ContextChangedException refused =
          assertThrows(
              ApprovalException.ContextChangedException.class,
              () -> c.respond(created.getId(), true, "alice", "", stale));
      assertEquals(created.getContextDigest(), refused.contextDigest());
      assertEquals(stale, refused.expectedContextDigest());
      assertEquals(0, c.getApproval(created.getId()).getVotesCount());
    }
  }

  @Test
  void aWatcherSeesTheFirstVoteAsAnUpdatedEventWhoseCursorResumesTheWatch() {
    String type = type("java-vote");
    WatchPendingRequest filter = WatchPendingRequest.newBuilder().addApprovalTypes(type).build();
    try (ApprovalGate c = Live.gate(server.addr, "java-watcher")) {
      String updatedCursor;
      try (PendingWatch watch = c.watchPending(filter)) {
        assertEquals(WatchEvent.Kind.SYNCED, watch.next().kind());
        Approval created = c.createApproval(ApprovalRequest.builder(type).build());
        WatchEvent added = watch.next();
        assertEquals(WatchEvent.Kind.ADDED, added.kind());
        c.respond(created.getId(), true, "alice", "");
        WatchEvent updated = watch.next();
        assertEquals(WatchEvent.Kind.UPDATED, updated.kind());
        assertEquals(created.getId(), updated.approval().getId());
        assertEquals(ApprovalStatus.APPROVAL_STATUS_PENDING, updated.approval().getStatus());
        assertEquals(List.of("alice"), voters(updated.approval().getVotesList()));
        assertFalse(updated.cursor().isEmpty());
        updatedCursor = updated.cursor();
        c.respond(created.getId(), true, "bob", "");
        assertEquals(WatchEvent.Kind.RESOLVED, watch.next().kind());
      }
      // Resumed from the updated event's cursor: exactly what followed it.
      try (PendingWatch resumed =
          c.watchPending(filter.toBuilder().setCursor(updatedCursor).build())) {
        WatchEvent next = resumed.next();
        assertEquals(WatchEvent.Kind.RESOLVED, next.kind());
        assertEquals(ApprovalStatus.APPROVAL_STATUS_APPROVED, next.approval().getStatus());
      }
    }
  }

  @Test
  void underOnTimeoutApproveTheGateProceedsAtTheDeadlineWithStatusExpired() {
    try (ApprovalGate agent = Live.gate(server.addr, "java-agent")) {
      Decision decision =
          agent.requestApproval(ApprovalRequest.builder(type("java-quiet")).build());
      assertEquals(ApprovalStatus.APPROVAL_STATUS_EXPIRED, decision.status());
      assertTrue(decision.approved(), "nobody objected: the gate proceeds");
      assertEquals(OnTimeout.ON_TIMEOUT_APPROVE, decision.onTimeout());
      assertTrue(decision.reason().contains("policy \"java-quiet:*\""), decision.reason());
      assertNotNull(decision.votes());
      assertEquals(0, decision.votes().size());
    }
  }
}
