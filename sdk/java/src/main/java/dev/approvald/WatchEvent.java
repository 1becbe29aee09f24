package dev.approvald;

import dev.approvald.approval.v1.Approval;

/**
 * One event of {@link ApprovalGate#watchPending}.
 *
 * @param kind what happened
 * @param approval the approval added, updated or resolved; null for SYNCED and RESET
 * @param cursor resumes right after this event; empty during the snapshot
 */
public record WatchEvent(Kind kind, Approval approval, String cursor) {
  /** What a watch event means. */
  public enum Kind {
    /** A pending approval, from the snapshot or newly created. */
    ADDED,
    /** A pending approval changed and is still pending: a vote arrived (see its votes). */
    UPDATED,
    /** A pending approval became final. */
    RESOLVED,
    /** The snapshot is complete; live events follow. */
    SYNCED,
    /**
     * The resume point was lost (its cursor aged out of the event log, or the stream broke off
     * during the snapshot): a fresh snapshot follows.
     */
    RESET
  }
}
