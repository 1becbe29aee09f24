// The client: every RPC of approval.v1, with `requestApproval` returning a
// typed decision and `watchPending` as an async iterable that resumes by
// cursor. Transport-agnostic: see ./node.ts (gRPC) and ./web.ts (gRPC-Web).
import { Code, ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  ApprovalService,
  ApprovalStatus,
  Decision as DecisionEnum,
  type Approval,
  type ListApprovalsRequest,
  type Vote,
  type WatchPendingRequest,
} from "./gen/approval/v1/approval_pb.js";
import { convertError } from "./errors.js";

export interface NewApproval {
  /** What kind of action this gates, e.g. "deploy:production". */
  approvalType: string;
  /** Shown to the human. */
  context?: JsonObject;
  labels?: { [key: string]: string };
  /** How long the approval stays open, in seconds (default: the server's, 300). */
  timeoutSeconds?: number;
  /** Calls with the same key attach to one approval. requestApproval makes one up. */
  idempotencyKey?: string;
}

/** A final approval. */
export interface Decision {
  /**
   * Whether the gate proceeds, as the service says: its voters approved it
   * (APPROVED), or it EXPIRED under a policy with on_timeout = "approve"
   * (then `reason` names the policy).
   */
  approved: boolean;
  status: ApprovalStatus;
  /** Who completed it (empty when it expired). */
  decidedBy: string;
  reason: string;
  /** Every vote, in the order cast (the completing approval or the veto last). */
  votes: Vote[];
  approval: Approval;
}

export type WatchEvent =
  /** added: pending (snapshot or new); updated: still pending, changed (a vote arrived); resolved: became final. */
  | { kind: "added" | "updated" | "resolved"; approval: Approval; cursor: string }
  | { kind: "synced"; cursor: string }
  /** The resume point was lost (cursor aged out, or the snapshot broke off): a fresh snapshot follows. */
  | { kind: "reset"; cursor: "" };

export interface ClientOptions {
  /** Sent as agent_id with every new approval. */
  agentId?: string;
  /** How long a blocked call or a watch keeps retrying after losing the service (default 60 s). */
  reconnectTimeoutMs?: number;
}

export class ApprovalClient {
  /** The generated Connect client, for anything not wrapped here. */
  readonly api: Client<typeof ApprovalService>;
  private readonly agentId: string;
  private readonly reconnectTimeoutMs: number;

  constructor(transport: Transport, options: ClientOptions = {}) {
    this.api = createClient(ApprovalService, transport);
    this.agentId = options.agentId ?? "";
    this.reconnectTimeoutMs = options.reconnectTimeoutMs ?? 60_000;
  }

  /**
   * Creates an approval and resolves once it is final. `options.timeoutMs` or
   * `options.signal` bound the wait: then it rejects (Code.DeadlineExceeded or
   * Code.Canceled) and the approval stays pending; call again with the same
   * idempotencyKey to re-attach. A lost connection re-attaches by itself.
   */
  async requestApproval(request: NewApproval, options: CallOptions = {}): Promise<Decision> {
    const message = this.creation(request);
    const response = await this.reattaching(options, (o) => this.api.requestApproval(message, o));
    return decisionOf(response.approval!, response.approved);
  }

  /** Creates an approval (or finds the one with this idempotencyKey, made up when not given) and returns at once. */
  async createApproval(request: NewApproval, options?: CallOptions): Promise<Approval> {
    return (await call(this.api.createApproval(this.creation(request), options))).approval!;
  }

  /** Resolves once the approval is final (at once if it already is). */
  async awaitApproval(id: string, options: CallOptions = {}): Promise<Decision> {
    const response = await this.reattaching(options, (o) => this.api.awaitApproval({ id }, o));
    return decisionOf(response.approval!, response.approved);
  }

  /**
   * Records a vote. With one required approval (the default) the first
   * decision wins: a conflicting one rejects with AlreadyDecidedError naming
   * the winner; an identical retry succeeds. Under a policy needing several
   * approvals the approval stays PENDING (its `votes` growing) until
   * `requiredApprovals` distinct voters approved; one reject ends it. A
   * voter's changed or second vote rejects with AlreadyVotedError. With
   * `expectedContextDigest` (the approval's contextDigest as shown), a
   * different context rejects with ContextChangedError and nothing changes.
   */
  async respond(id: string, approve: boolean, by: { responder: string; reason?: string; expectedContextDigest?: string }, options?: CallOptions): Promise<Approval> {
    const decision = approve ? DecisionEnum.APPROVE : DecisionEnum.REJECT;
    const request = { id, decision, responder: by.responder, reason: by.reason ?? "", expectedContextDigest: by.expectedContextDigest ?? "" };
    const response = await call(this.api.respond(request, options));
    return response.approval!;
  }

  async getApproval(id: string, options?: CallOptions): Promise<Approval> {
    return (await call(this.api.getApproval({ id }, options))).approval!;
  }

  /** Withdraws a pending approval; its waiter gets CANCELLED. */
  async cancelApproval(id: string, reason = "", options?: CallOptions): Promise<Approval> {
    return (await call(this.api.cancelApproval({ id, reason }, options))).approval!;
  }

  /** Every approval matching the filter, newest first, page after page. */
  async *listApprovals(filter: Partial<Omit<ListApprovalsRequest, "$typeName" | "pageToken">> = {}, options?: CallOptions): AsyncGenerator<Approval> {
    let pageToken = "";
    do {
      const page = await call(this.api.listApprovals({ ...filter, pageToken }, options));
      yield* page.approvals;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /**
   * Every pending approval matching the filter (snapshot, empty cursors),
   * then "synced", then live "added"/"updated"/"resolved" events, until `signal`
   * aborts or the loop breaks. A lost stream resumes from the last cursor
   * (any replica: no gap, no duplicate); `filter.cursor` starts after an
   * earlier event.
   */
  async *watchPending(filter: Partial<Omit<WatchPendingRequest, "$typeName">> = {}, options: { signal?: AbortSignal } = {}): AsyncGenerator<WatchEvent> {
    const request = { ...filter, cursor: filter.cursor ?? "" };
    const budget = new ReconnectBudget(this.reconnectTimeoutMs);
    let yieldedWithoutCursor = false;
    for (;;) {
      let received = false;
      let failure: ConnectError | undefined;
      // Ends the call when the consumer stops iterating (or the caller aborts).
      const stop = new AbortController();
      const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
      try {
        for await (const response of this.api.watchPending(request, { signal })) {
          received = true;
          if (response.cursor) request.cursor = response.cursor;
          else yieldedWithoutCursor = true;
          const event = response.event;
          if (event.case === "added" || event.case === "updated" || event.case === "resolved") {
            yield { kind: event.case, approval: event.value, cursor: response.cursor };
          } else if (event.case === "synced") {
            yield { kind: "synced", cursor: response.cursor };
          }
          // An event kind newer than this SDK: skipped (its cursor is kept).
        }
      } catch (reason) {
        failure = ConnectError.from(reason);
      } finally {
        stop.abort();
      }
      if (options.signal?.aborted) return;
      const code = failure === undefined ? Code.Unavailable : lostCode(failure); // a stream the server ended is lost too
      if (code === Code.OutOfRange || (code === Code.Unavailable && !request.cursor && yieldedWithoutCursor)) {
        request.cursor = "";
        yieldedWithoutCursor = false;
        yield { kind: "reset", cursor: "" };
        if (code === Code.OutOfRange) continue;
      } else if (code !== Code.Unavailable) {
        throw convertError(failure);
      }
      budget.lost(received);
      await budget.pause(options.signal, failure);
    }
  }

  private creation(request: NewApproval) {
    return {
      approvalType: request.approvalType,
      agentId: this.agentId,
      context: request.context,
      labels: request.labels ?? {},
      timeout: request.timeoutSeconds === undefined ? undefined : durationFromMs(request.timeoutSeconds * 1000),
      // Always a key, made up when not given: requestApproval re-attaches
      // by it, and a retry of a create after an ambiguous failure returns the
      // same approval instead of making a second.
      idempotencyKey: request.idempotencyKey || crypto.randomUUID(),
    };
  }

  /** Repeats a blocking call after UNAVAILABLE (lost connection, replica
   * shutting down): the repeat re-attaches by idempotency key or id. */
  private async reattaching<T>(options: CallOptions, run: (options: CallOptions) => Promise<T>): Promise<T> {
    const waitEnds = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const budget = new ReconnectBudget(this.reconnectTimeoutMs, waitEnds);
    for (;;) {
      const started = Date.now();
      const timeoutMs = waitEnds === undefined ? undefined : Math.max(1, waitEnds - started);
      try {
        return await run({ ...options, timeoutMs });
      } catch (reason) {
        const error = ConnectError.from(reason);
        if (lostCode(error) !== Code.Unavailable) throw convertError(error);
        // A call that ran a while had reached the service: a fresh loss.
        budget.lost(Date.now() - started >= 1000);
        await budget.pause(options.signal, error);
      }
    }
  }
}

/**
 * The error's code, with a failed fetch counted as UNAVAILABLE: over
 * gRPC-Web a refused or dropped connection (a replica restarting) rejects
 * `fetch` with a TypeError, which Connect reports as UNKNOWN.
 */
function lostCode(error: ConnectError): Code {
  if (error.code === Code.Unknown && error.cause instanceof TypeError) return Code.Unavailable;
  return error.code;
}

function decisionOf(approval: Approval, approved: boolean): Decision {
  return {
    approved,
    status: approval.status,
    decidedBy: approval.decidedBy,
    reason: approval.reason,
    votes: approval.votes,
    approval,
  };
}

async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (reason) {
    throw convertError(reason);
  }
}

/** How long, and how often, to retry after losing the service. */
class ReconnectBudget {
  private ends = 0;
  private pauseMs = 100;

  constructor(private readonly timeoutMs: number, private readonly hardEnd?: number) {}

  lost(fresh: boolean) {
    if (fresh || this.ends === 0) {
      this.ends = Date.now() + this.timeoutMs;
      this.pauseMs = 100;
    }
    if (this.hardEnd !== undefined) this.ends = Math.min(this.ends, this.hardEnd);
  }

  /** Waits before the next try; throws when the budget is spent. */
  async pause(signal: AbortSignal | undefined, cause: ConnectError | undefined) {
    const left = this.ends - Date.now();
    if (left <= 0) {
      throw new ConnectError(`no connection to approvald within ${this.timeoutMs} ms: ${cause?.rawMessage ?? "stream ended"}`, Code.Unavailable, undefined, undefined, cause);
    }
    const ms = Math.min(this.pauseMs, left);
    this.pauseMs = Math.min(this.pauseMs * 2, 2000);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
    signal?.throwIfAborted();
  }
}
