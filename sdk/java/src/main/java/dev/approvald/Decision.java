package dev.approvald;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.ApprovalStatus;
import dev.approvald.approval.v1.OnTimeout;
import dev.approvald.approval.v1.Vote;
import java.util.List;

/**
 * A final approval, as {@link ApprovalGate#requestApproval} returns it.
 *
 * @param approval the approval, as the service stores it
 * @param approved whether the gate proceeds, as the service says: its voters approved it
 *     (APPROVED), or it EXPIRED under a policy whose on_timeout is "approve" (then {@link
 *     #reason()} names the policy)
 */
public record Decision(Approval approval, boolean approved) {
  public String id() {
    return approval.getId();
  }

  /** APPROVED, REJECTED, EXPIRED or CANCELLED. */
  public ApprovalStatus status() {
    return approval.getStatus();
  }

  /** Who made it final: the voter who completed it, or the canceller; empty when it expired. */
  public String decidedBy() {
    return approval.getDecidedBy();
  }

  /** Why: the responder's or canceller's reason, or why it expired (naming the policy). */
  public String reason() {
    return approval.getReason();
  }

  /**
   * Every vote, in the order cast (the one that completed it, or the veto, last): {@code
   * getVoter()}, {@code getDecision()}, {@code getReason()}, {@code getVotedAt()}.
   */
  public List<Vote> votes() {
    return approval.getVotesList();
  }

  /** Distinct approvals its policy required (1 unless a policy says more). */
  public int requiredApprovals() {
    return Math.max(approval.getRequiredApprovals(), 1);
  }

  /** What its deadline meant for the gate (its policy's; unspecified in old records: REJECT). */
  public OnTimeout onTimeout() {
    return approval.getOnTimeout() == OnTimeout.ON_TIMEOUT_APPROVE
        ? OnTimeout.ON_TIMEOUT_APPROVE
        : OnTimeout.ON_TIMEOUT_REJECT;
  }

  /** "sha256:" + hex of the canonical JSON of its context: what exactly was decided. */
  public String contextDigest() {
    return approval.getContextDigest();
  }
}
