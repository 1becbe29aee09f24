package dev.approvald;

import dev.approvald.approval.v1.Approval;
import dev.approvald.approval.v1.ApprovalStatus;

/**
 * A final approval, as {@link ApprovalGate#requestApproval} returns it.
 *
 * @param approval the approval, as the service stores it
 * @param approved true only when a human approved (status APPROVED)
 */
public record Decision(Approval approval, boolean approved) {
  public String id() {
    return approval.getId();
  }

  /** APPROVED, REJECTED, EXPIRED or CANCELLED. */
  public ApprovalStatus status() {
    return approval.getStatus();
  }

  /** Who made it final: the responder, or the canceller; empty when it expired. */
  public String decidedBy() {
    return approval.getDecidedBy();
  }

  /** Why: the responder's or canceller's reason, or why it expired. */
  public String reason() {
    return approval.getReason();
  }
}
