// The inbox: pending approvals live from WatchPending, history from
// ListApprovals, one approval by id, and Approve / Reject that always sends
// the context digest the human saw. Talks gRPC-Web to the page's own origin
// through the TypeScript SDK's web entry point. Every value from the API is
// put in the page as text (textContent), never as HTML.
import {
  AlreadyDecidedError,
  AlreadyVotedError,
  ApprovalStatus,
  Code,
  ConnectError,
  ContextChangedError,
  InvalidArgumentError,
  createWebClient,
  type Approval,
} from "../../sdk/typescript/src/web.ts";
import { Decision as VoteDecision, OnTimeout, type Vote } from "../../sdk/typescript/src/gen/approval/v1/approval_pb.ts";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { renderJson } from "./json-tree.ts";

const TOKEN_KEY = "approvald.token"; // sessionStorage: this tab only
const NAME_KEY = "approvald.name"; // localStorage: a display name, not a secret
const PRINCIPAL_HEADER = "approvald-principal"; // approval_api::PRINCIPAL_METADATA
const NOTIFY_KEY = "approvald.notify"; // localStorage: "on" once asked for
const RECENT_MAX = 10;
const PAGE_SIZE = 25;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

// ---- who and how we talk to the API ----

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let client = makeClient();

function makeClient() {
  // Same origin; with no token, an authenticating proxy in front may inject
  // the Authorization header itself.
  return createWebClient(location.origin, token ? { token } : {});
}

// ---- the view's state ----

type View = { kind: "pending" } | { kind: "history" } | { kind: "one"; id: string };
const view: View = routeOf(location.pathname);
const filters = filtersFromUrl();
const pending = new Map<string, Approval>();
let history: Approval[] = [];
let historyToken = "";
let selectedId = "";
// The principal the server takes us for (its response header, with auth on).
let principal = "";
let decideMode: "approve" | "reject" | "" = "";
const recent: { approval: Approval }[] = [];
let watchAbort: AbortController | undefined;
// The browser knows when the network goes: then the open stream is cut at
// once (a dead connection could otherwise hang unnoticed for minutes), and
// when it is back the next try starts without waiting out the pause.
let streamAbort: AbortController | undefined;
let wake: (() => void) | undefined;

function routeOf(path: string): View {
  if (path === "/history") return { kind: "history" };
  const m = /^\/approvals\/([A-Za-z0-9-]+)$/.exec(path);
  if (m) return { kind: "one", id: m[1] };
  return { kind: "pending" };
}

function filtersFromUrl() {
  const q = new URLSearchParams(location.search);
  const labels: Record<string, string> = {};
  for (const l of q.getAll("label")) {
    const i = l.indexOf("=");
    if (i > 0) labels[l.slice(0, i)] = l.slice(i + 1);
  }
  return {
    types: q.getAll("type").flatMap((t) => t.split(",")).map((t) => t.trim()).filter(Boolean),
    agent: q.get("agent") ?? "",
    labels,
    status: q.get("status") ?? "",
  };
}

const STATUS_NAMES: Record<number, string> = {
  [ApprovalStatus.PENDING]: "pending",
  [ApprovalStatus.APPROVED]: "approved",
  [ApprovalStatus.REJECTED]: "rejected",
  [ApprovalStatus.EXPIRED]: "expired",
  [ApprovalStatus.CANCELLED]: "cancelled",
};
const statusName = (a: Approval) => STATUS_NAMES[a.status] ?? "unknown";

// ---- small DOM helpers ----

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function when(ts: Approval["createdAt"]): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

function ago(d: Date | undefined): string {
  if (!d) return "";
  return `${span(Date.now() - d.getTime())} ago`;
}

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function countdown(a: Approval): string {
  const d = when(a.deadline);
  return d ? countdownText(d.getTime(), selfApproves(a)) : "";
}

function countdownText(deadline: number, approves: boolean): string {
  const left = deadline - Date.now();
  if (left <= 0) return "deadline passed";
  return approves ? `approves itself in ${span(left)}` : `expires in ${span(left)}`;
}

/** Its policy says doing nothing approves it (on_timeout = approve). */
const selfApproves = (a: Approval) => a.onTimeout === OnTimeout.APPROVE;

/** "1 of 2 approvals" (only when a policy needs more than one). */
function tally(a: Approval): string {
  if (a.requiredApprovals <= 1) return "";
  const yes = a.votes.filter((v) => v.decision === VoteDecision.APPROVE).length;
  return `${yes} of ${a.requiredApprovals} approvals`;
}

/** Who the server records as our vote's voter: the principal, or the name given. */
function me(): string {
  return principal || (token ? "" : (localStorage.getItem(NAME_KEY) ?? "").trim());
}

function myVote(a: Approval): Vote | undefined {
  const who = me();
  return who ? a.votes.find((v) => v.voter === who) : undefined;
}

const voted = (v: Vote) => (v.decision === VoteDecision.APPROVE ? "approved" : v.decision === VoteDecision.REJECT ? "rejected" : "voted");

function notice(text: string, kind: "error" | "info" = "error") {
  const n = $("notice");
  n.textContent = text;
  n.dataset.kind = kind;
  n.hidden = !text;
}

function setConn(state: "connecting" | "live" | "reconnecting" | "signin" | "off", text: string) {
  const c = $("conn");
  c.dataset.state = state;
  c.textContent = text;
}

// ---- errors in words ----

function describe(error: unknown): string {
  if (error instanceof AlreadyDecidedError) {
    const at = error.decidedAt ? ` at ${new Date(error.decidedAt).toLocaleString()}` : "";
    const by = error.decidedBy ? ` by ${error.decidedBy}` : "";
    const why = error.reason ? `: “${error.reason}”` : "";
    return `Already ${error.status}${by}${at}${why}. Your decision was not recorded.`;
  }
  if (error instanceof AlreadyVotedError) {
    return `You (${error.voter}) already voted ${error.decision} on this; a vote cannot be changed or cast twice. Nothing changed.`;
  }
  if (error instanceof ContextChangedError) {
    return "Refused: what this approval asks is not what you reviewed (its context digest differs). Nothing was recorded; reload it and review again.";
  }
  if (error instanceof InvalidArgumentError) {
    return `Refused: ${error.rawMessage}`;
  }
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.PermissionDenied:
      return `Not allowed: ${e.rawMessage}`;
    case Code.Unauthenticated:
      return `Sign-in needed: ${e.rawMessage}`;
    case Code.Unavailable:
    case Code.Unknown:
      return "approvald is unreachable right now; try again in a moment.";
    case Code.NotFound:
      return `Not found: ${e.rawMessage}`;
    case Code.FailedPrecondition:
      return `Refused: ${e.rawMessage}`;
    case Code.ResourceExhausted:
      return `Too much at once: ${e.rawMessage}`;
    default:
      return e.rawMessage || String(error);
  }
}

function needsSignIn(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Unauthenticated;
}

// ---- the pending list, live ----

/**
 * Follows WatchPending: snapshot, synced, then live events. After a lost
 * stream it shows "reconnecting" and resumes from the last cursor (no gap,
 * no duplicate); when the cursor is too old (OUT_OF_RANGE) it starts over
 * with a fresh snapshot, which replaces the list at `synced` (no stale item).
 * Going offline cuts the stream at once; coming back online retries at once.
 * With `only` (the approval's own page) it follows that one approval: its
 * votes and its end, live.
 */
async function watch(only?: Approval) {
  watchAbort?.abort();
  const abort = new AbortController();
  watchAbort = abort;
  let cursor = "";
  let delay = 250;
  for (;;) {
    let fresh: Map<string, Approval> | undefined = cursor ? undefined : new Map();
    const stream = new AbortController();
    streamAbort = stream;
    const signal = AbortSignal.any([abort.signal, stream.signal]);
    try {
      const request = only ? { approvalTypes: [only.approvalType], cursor } : { approvalTypes: filters.types, agentId: filters.agent, labels: filters.labels, cursor };
      const onHeader = (headers: Headers) => {
        // A resumed stream sends no snapshot: the headers say it is back.
        if (cursor) setConn("live", "Live");
        // With auth on, the server says who it takes us for (a static token
        // or a proxy's header tell the page nothing).
        sawPrincipal(headers);
      };
      for await (const r of client.api.watchPending(request, { signal, onHeader })) {
        delay = 250;
        const event = r.event;
        if (only) {
          if (r.cursor) cursor = r.cursor;
          if (event.case === "synced") {
            // Decided while the stream was gone and the cursor aged out: ask.
            if (fresh && !fresh.has(only.id)) void refreshOne(only.id);
            fresh = undefined;
            setConn("live", "Live");
          } else if (event.case && event.value.id === only.id) {
            fresh?.set(only.id, event.value);
            history = [event.value];
            renderHistory();
            if (event.case === "resolved") {
              setConn("live", "Connected");
              abort.abort(); // final: nothing more will come
              return;
            }
          }
          continue;
        }
        if (event.case === "added") {
          (fresh ?? pending).set(event.value.id, event.value);
          if (!fresh && r.cursor) notifyNew(event.value);
        } else if (event.case === "updated") {
          // A vote on a pending approval: the same card, updated in place.
          (fresh ?? pending).set(event.value.id, event.value);
        } else if (event.case === "resolved") {
          (fresh ?? pending).delete(event.value.id);
          if (!fresh) decided(event.value);
        } else if (event.case === "synced") {
          if (fresh) {
            pending.clear();
            for (const [id, a] of fresh) pending.set(id, a);
            fresh = undefined;
          }
          setConn("live", "Live");
          notice("");
        }
        if (r.cursor) cursor = r.cursor;
        if (!fresh) renderPending();
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      const e = ConnectError.from(error);
      if (e.code === Code.OutOfRange) {
        cursor = ""; // too far behind: start over with a snapshot
      } else if (needsSignIn(error)) {
        setConn("signin", "Signed out");
        openSignIn(describe(error));
        return;
      } else if (only && (e.code === Code.PermissionDenied || e.code === Code.InvalidArgument)) {
        setConn("off", "Not live"); // the approval stays readable; it just does not update itself
        return;
      } else if (e.code === Code.PermissionDenied || e.code === Code.InvalidArgument) {
        setConn("off", "Stopped");
        notice(describe(error));
        return;
      }
    }
    if (abort.signal.aborted) return;
    setConn("reconnecting", "Reconnecting…");
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, delay);
    });
    wake = undefined;
    delay = Math.min(delay * 2, 4000);
  }
}

function sawPrincipal(headers: Headers) {
  const p = headers.get(PRINCIPAL_HEADER);
  if (p) {
    principal = p;
    $("who").textContent = `Signed in as ${p}`;
  }
}

window.addEventListener("offline", () => streamAbort?.abort());
window.addEventListener("online", () => wake?.());

function decided(a: Approval) {
  recent.unshift({ approval: a });
  recent.length = Math.min(recent.length, RECENT_MAX);
  if (a.id === selectedId) {
    history = [a];
  }
}

function sortedPending(): Approval[] {
  return [...pending.values()].sort((x, y) => {
    const dx = when(x.createdAt)?.getTime() ?? 0;
    const dy = when(y.createdAt)?.getTime() ?? 0;
    return dx - dy || x.id.localeCompare(y.id);
  });
}

/**
 * Shows `items` in #list, keyed by id: an item already shown keeps its
 * element (only its content changes, and only when it changed), so a vote
 * arriving updates its card in place: no list rebuild, no lost focus.
 */
function renderList(items: Approval[]) {
  const list = $("list");
  const shown = new Map<string, HTMLElement>();
  for (const li of list.children) shown.set((li as HTMLElement).dataset.id ?? "", li as HTMLElement);
  const wanted = items.map((a) => {
    let li = shown.get(a.id);
    if (!li) {
      const button = el("button", { type: "button", class: "item", "data-id": a.id });
      button.addEventListener("click", () => select(a.id));
      li = el("li", { "data-id": a.id }, button);
    }
    fillItem(li.firstElementChild as HTMLElement, a, a.id === selectedId);
    return li;
  });
  const keep = new Set(wanted);
  for (const li of shown.values()) if (!keep.has(li)) li.remove();
  wanted.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
}

function fillItem(button: HTMLElement, a: Approval, selected: boolean) {
  button.setAttribute("aria-current", selected ? "true" : "false");
  const pendingNow = a.status === ApprovalStatus.PENDING;
  const mine = myVote(a);
  const votes = a.votes.map((v) => `${v.voter} ${voted(v)}${v.votedAt ? ` at ${timestampDate(v.votedAt).toLocaleTimeString()}` : ""}${v.reason ? `: “${v.reason}”` : ""}`);
  const tallyText = tally(a) + (mine && pendingNow ? ` · you ${voted(mine)}` : "");
  // Rebuild the content only when what it shows changed (the countdown ticks by itself).
  const key = JSON.stringify([a.approvalType, a.agentId || a.requester, statusName(a), String(when(a.deadline)?.getTime()), String(when(a.decidedAt)?.getTime()), tallyText, votes, selfApproves(a)]);
  if (button.dataset.key === key) return;
  button.dataset.key = key;
  const deadline = String(when(a.deadline)?.getTime() ?? "");
  const children: Node[] = [
    el("span", { class: "type" }, a.approvalType),
    el("span", { class: "status", "data-status": statusName(a) }, statusName(a)),
    el("span", { class: "meta" }, a.agentId || a.requester),
    pendingNow ? el("span", { class: "countdown", "data-deadline": deadline, "data-approves": String(selfApproves(a)) }, countdown(a)) : el("span", { class: "countdown" }, ago(when(a.decidedAt))),
  ];
  if (tallyText) children.push(el("span", { class: "tally" }, tallyText));
  for (const v of votes) children.push(el("span", { class: "vote" }, v));
  if (pendingNow && selfApproves(a)) children.push(el("span", { class: "fate" }, "approves itself at the deadline"));
  button.replaceChildren(...children);
}

function renderPending() {
  const items = sortedPending();
  if (!items.some((a) => a.id === selectedId)) {
    const stillShown = selectedId && recent.some((r) => r.approval.id === selectedId);
    if (!stillShown) selectedId = items[0]?.id ?? "";
  }
  renderList(items);
  $("empty").hidden = items.length > 0;
  $("count").textContent = String(items.length);
  document.title = items.length ? `(${items.length}) Inbox · approvald` : "Inbox · approvald";
  const recentList = $("recent");
  $("recent-title").hidden = recent.length === 0;
  recentList.replaceChildren(
    ...recent.map(({ approval: a }) => {
      const who = a.decidedBy ? ` by ${a.decidedBy}` : "";
      const li = el("li", { "data-id": a.id }, el("span", { class: "type" }, a.approvalType), ` ${statusName(a)}${who}`);
      if (a.reason) li.append(el("span", { class: "reason" }, ` “${a.reason}”`));
      return li;
    }),
  );
  renderDetail();
}

// ---- browser notifications (optional) ----

/**
 * A new approval while the tab is hidden becomes a browser notification, if
 * the human turned them on (the permission is asked on that click, never on
 * load). Clicking it brings the tab back with the approval selected.
 */
function notifyNew(a: Approval) {
  if (!notifyOn() || document.visibilityState !== "hidden") return;
  let n: Notification;
  try {
    n = new Notification(`Approval needed: ${a.approvalType}`, {
      body: `${a.agentId || a.requester} asks. ${countdown(a)}`.trim(),
      tag: a.id,
    });
  } catch {
    return; // Chrome on Android shows notifications only from a service worker
  }
  n.onclick = () => {
    window.focus();
    select(a.id);
    n.close();
  };
}

function notifyOn(): boolean {
  return "Notification" in window && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "on";
}

function showNotify() {
  const b = $("notify");
  b.hidden = !("Notification" in window) || Notification.permission === "denied";
  const on = notifyOn();
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? "Notifications on" : "Notify me";
}

async function toggleNotify() {
  if (notifyOn()) {
    localStorage.removeItem(NOTIFY_KEY);
  } else if ((await Notification.requestPermission()) === "granted") {
    localStorage.setItem(NOTIFY_KEY, "on");
  } else {
    notice("Notifications are blocked for this site; allow them in the browser's site settings.", "info");
  }
  showNotify();
}

// ---- history ----

async function loadHistory(more = false) {
  try {
    const statuses = filters.status ? [statusOf(filters.status)] : [];
    const page = await client.api.listApprovals({
      statuses,
      approvalTypes: filters.types,
      agentId: filters.agent,
      labels: filters.labels,
      pageSize: PAGE_SIZE,
      pageToken: more ? historyToken : "",
    });
    history = more ? [...history, ...page.approvals] : page.approvals;
    historyToken = page.nextPageToken;
    setConn("live", "Connected");
    notice("");
    if (!history.some((a) => a.id === selectedId)) selectedId = history[0]?.id ?? "";
    renderHistory();
  } catch (error) {
    if (needsSignIn(error)) openSignIn(describe(error));
    notice(describe(error));
  }
}

function statusOf(name: string): ApprovalStatus {
  const found = Object.entries(STATUS_NAMES).find(([, n]) => n === name);
  return found ? (Number(found[0]) as ApprovalStatus) : ApprovalStatus.UNSPECIFIED;
}

function renderHistory() {
  renderList(history);
  $("empty").hidden = history.length > 0;
  $("empty").textContent = "No approval matches these filters.";
  $("more").hidden = !historyToken;
  renderDetail();
}

// ---- one approval ----

async function loadOne(id: string) {
  try {
    const a = await client.getApproval(id, { onHeader: sawPrincipal });
    history = [a];
    selectedId = a.id;
    setConn("live", "Connected");
    renderHistory();
    if (a.status === ApprovalStatus.PENDING) void watch(a);
  } catch (error) {
    if (needsSignIn(error)) openSignIn(describe(error));
    setConn("off", "");
    $("detail").replaceChildren(el("p", { class: "error" }, describe(error)));
  }
}

/** The approval's page after a lost stream: the approval as it is now. */
async function refreshOne(id: string) {
  try {
    const a = await client.getApproval(id);
    history = [a];
    renderHistory();
  } catch {
    // the next event or reload shows it
  }
}

function current(): Approval | undefined {
  return pending.get(selectedId) ?? history.find((a) => a.id === selectedId) ?? recent.find((r) => r.approval.id === selectedId)?.approval;
}

function select(id: string) {
  if (id !== selectedId) decideMode = "";
  selectedId = id;
  notice("");
  rerender();
  document.querySelector<HTMLElement>(`#list button[data-id="${CSS.escape(id)}"]`)?.focus();
}

function rerender() {
  if (view.kind === "pending") renderPending();
  else renderHistory();
}

function renderDetail() {
  const pane = $("detail");
  const a = current();
  if (!a) {
    if (view.kind !== "one") pane.replaceChildren(el("p", { class: "hint" }, view.kind === "pending" ? "Nothing to decide. New approvals appear here by themselves." : "Select an approval."));
    return;
  }
  if (pane.dataset.id === a.id && pane.dataset.status === statusName(a) && pane.dataset.mode === decideMode) {
    updateVotes(a); // the rest is unchanged: keep what the human is typing
    return;
  }
  pane.dataset.id = a.id;
  pane.dataset.status = statusName(a);
  pane.dataset.mode = decideMode;
  const rows: [string, Node | string][] = [
    ["Status", el("span", { class: "status", "data-status": statusName(a) }, statusName(a))],
    ["Agent", a.agentId || "—"],
    ["Requester", a.requester],
    ["Created", `${when(a.createdAt)?.toLocaleString() ?? ""} (${ago(when(a.createdAt))})`],
  ];
  if (a.status === ApprovalStatus.PENDING) {
    rows.push(["Deadline", el("span", { class: "countdown", "data-deadline": String(when(a.deadline)?.getTime() ?? ""), "data-approves": String(selfApproves(a)) }, countdown(a))]);
    rows.push([
      "If nobody decides",
      el("span", { class: selfApproves(a) ? "fate" : "" }, selfApproves(a) ? "it approves itself at the deadline (its policy: on_timeout = approve)" : "it expires at the deadline and the gate does not proceed"),
    ]);
  } else {
    rows.push(["Decided", `${a.decidedBy ? `by ${a.decidedBy} ` : ""}${when(a.decidedAt)?.toLocaleString() ?? ""}`]);
    if (a.reason) rows.push(["Reason", a.reason]);
  }
  const labels = Object.entries(a.labels);
  if (labels.length) rows.push(["Labels", el("span", {}, ...labels.map(([k, v]) => el("span", { class: "label" }, `${k}=${v}`)))]);
  if (a.requiredApprovals > 1 || a.votes.length) {
    const policy = a.policy?.name ? ` (policy ${a.policy.name})` : "";
    rows.push(["Approvals", el("span", { id: "tally" }, (tally(a) || `${a.requiredApprovals || 1} needed`) + policy)]);
    rows.push(["Votes", votesList(a)]);
  }
  rows.push(["Id", el("a", { href: `/approvals/${a.id}` }, a.id)]);
  rows.push(["Context digest", el("code", { class: "digest" }, a.contextDigest)]);
  const dl = el("dl", { class: "facts" });
  for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, v));

  const copy = el("button", { type: "button", class: "copy" }, "Copy JSON");
  copy.addEventListener("click", () => {
    void navigator.clipboard?.writeText(JSON.stringify(a.context ?? {}, null, 2)).then(() => notice("Context copied.", "info"), () => notice("Copy failed: select the text instead."));
  });
  const context = el("section", { class: "context", "aria-label": "Context" }, el("h3", {}, "Context ", copy), renderJson(a.context ?? {}));

  const children: Node[] = [el("h2", { id: "detail-title" }, a.approvalType), dl, context];
  if (a.status === ApprovalStatus.PENDING) children.push(decideForm(a));
  pane.replaceChildren(...children);
  showMyVote(a);
}

/** Every vote so far: who, what, when and why, in the order cast. */
function votesList(a: Approval) {
  if (!a.votes.length) return el("span", { id: "votes", class: "hint" }, "none yet");
  return el(
    "ul",
    { id: "votes", class: "votes" },
    ...a.votes.map((v) => {
      const li = el("li", {}, el("strong", {}, v.voter), ` ${voted(v)}`, v.votedAt ? ` ${timestampDate(v.votedAt).toLocaleString()}` : "");
      if (v.reason) li.append(el("span", { class: "reason" }, ` “${v.reason}”`));
      return li;
    }),
  );
}

/** A vote arrived on the approval shown: its tally, its votes and our own vote, in place. */
function updateVotes(a: Approval) {
  const shownTally = document.getElementById("tally");
  if (shownTally) shownTally.textContent = (tally(a) || `${a.requiredApprovals || 1} needed`) + (a.policy?.name ? ` (policy ${a.policy.name})` : "");
  document.getElementById("votes")?.replaceWith(votesList(a));
  showMyVote(a);
}

/** Once we voted on a pending approval, the form says so and takes no second vote. */
function showMyVote(a: Approval) {
  const p = document.getElementById("my-vote");
  if (!p) return;
  const mine = a.status === ApprovalStatus.PENDING ? myVote(a) : undefined;
  const yes = a.votes.filter((v) => v.decision === VoteDecision.APPROVE).length;
  const more = Math.max(0, a.requiredApprovals - yes);
  p.hidden = !mine;
  p.textContent = mine ? `You ${voted(mine)} this${mine.votedAt ? ` at ${timestampDate(mine.votedAt).toLocaleTimeString()}` : ""}. It waits for ${more} more approval${more === 1 ? "" : "s"} from others; a vote cannot be changed.` : "";
  for (const b of document.querySelectorAll<HTMLButtonElement>(".decide .buttons button")) b.disabled = !!mine;
}

function decideForm(a: Approval) {
  const reason = el("textarea", { id: "reason", name: "reason", rows: "2", maxlength: "4096", "aria-describedby": "reason-help" }) as HTMLTextAreaElement;
  const name = el("input", { id: "me", name: "me", autocomplete: "name", value: localStorage.getItem(NAME_KEY) ?? "" }) as HTMLInputElement;
  name.addEventListener("input", () => {
    localStorage.setItem(NAME_KEY, name.value.trim());
    const now = current();
    if (now) showMyVote(now);
  });
  const help = el("p", { id: "reason-help", class: "hint" }, decideMode ? `Press Enter to ${decideMode}, Esc to cancel.` : "A reason is required to reject.");
  const approve = el("button", { type: "submit", value: "approve", class: "approve", "aria-keyshortcuts": "a" }, "Approve");
  const reject = el("button", { type: "submit", value: "reject", class: "reject", "aria-keyshortcuts": "r" }, "Reject");
  const form = el(
    "form",
    { class: "decide", "aria-label": "Decide" },
    el("label", { class: "me" }, "Your name ", name, el("span", { class: "hint" }, " (ignored when signed in: the server records who you are)")),
    el("label", {}, "Reason ", reason),
    help,
    el("p", { id: "my-vote", class: "my-vote", role: "status", hidden: "" }),
    el("div", { class: "buttons" }, approve, reject),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const submitter = (e as SubmitEvent).submitter as HTMLButtonElement | null;
    const mode = (submitter?.value as "approve" | "reject" | undefined) ?? decideMode;
    if (mode) void decide(a, mode === "approve", reason.value, name.value);
  });
  reason.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && decideMode) {
      e.preventDefault();
      void decide(a, decideMode === "approve", reason.value, name.value);
    } else if (e.key === "Escape") {
      decideMode = "";
      reason.blur();
      help.textContent = "A reason is required to reject.";
    }
  });
  return form;
}

async function decide(a: Approval, approve: boolean, reason: string, name: string) {
  if (!approve && !reason.trim()) {
    notice("Give a reason to reject.");
    $("reason")?.focus();
    return;
  }
  if (!token && !name.trim()) {
    notice("Give your name (or sign in): it is recorded as who decided.");
    $("me")?.focus();
    return;
  }
  localStorage.setItem(NAME_KEY, name.trim());
  // The keyboard reaches here too when the buttons are disabled.
  const mine = myVote(current() ?? a);
  if (mine && (current() ?? a).status === ApprovalStatus.PENDING) {
    notice(`You already ${voted(mine)} this; a vote cannot be changed or cast twice.`, "info");
    return;
  }
  try {
    const done = await client.respond(a.id, approve, {
      responder: name.trim(),
      reason: reason.trim(),
      expectedContextDigest: a.contextDigest,
    });
    decideMode = "";
    if (done.status === ApprovalStatus.PENDING) {
      // A vote that does not decide yet (the policy needs more approvals).
      const mine = done.votes.at(-1);
      if (mine && token && !principal) principal = mine.voter;
      notice(`${done.approvalType}: your vote is recorded, ${tally(done) || "still pending"}.`, "info");
      if (pending.has(done.id)) pending.set(done.id, done);
      history = history.map((h) => (h.id === done.id ? done : h));
      rerender();
      return;
    }
    notice(`${done.approvalType}: ${statusName(done)}${done.decidedBy ? ` by ${done.decidedBy}` : ""}.`, "info");
    if (done.decidedBy && token) $("who").textContent = `Signed in as ${done.decidedBy}`;
    pending.delete(done.id);
    if (!recent.some((r) => r.approval.id === done.id)) decided(done);
    if (view.kind !== "pending") history = history.map((h) => (h.id === done.id ? done : h));
    rerender();
  } catch (error) {
    if (needsSignIn(error)) openSignIn(describe(error));
    notice(await describeRefusedVote(a, error));
  }
}

/**
 * A refused vote in words. A vote by someone who already voted otherwise
 * (ALREADY_VOTED) is told from the approval as it is now: it is fetched
 * again and shown with that vote (when, why).
 */
async function describeRefusedVote(a: Approval, error: unknown): Promise<string> {
  if (!(error instanceof AlreadyVotedError)) return describe(error);
  let now: Approval;
  try {
    now = await client.getApproval(a.id);
  } catch {
    return describe(error);
  }
  if (pending.has(now.id) && now.status === ApprovalStatus.PENDING) pending.set(now.id, now);
  history = history.map((h) => (h.id === now.id ? now : h));
  rerender();
  const mine = now.votes.find((v) => v.voter === error.voter);
  if (now.status !== ApprovalStatus.PENDING || !mine) return describe(error);
  const at = mine.votedAt ? ` at ${timestampDate(mine.votedAt).toLocaleString()}` : "";
  return `You already ${voted(mine)} this${at}${mine.reason ? ` (“${mine.reason}”)` : ""}; a vote cannot be changed or cast twice. Nothing changed${tally(now) ? ` (${tally(now)} so far)` : ""}.`;
}

// ---- sign in ----

function openSignIn(message = "") {
  $("signin-error").textContent = message;
  const d = $("signin") as HTMLDialogElement;
  if (!d.open) d.showModal();
  $("token").focus();
}

function showWho() {
  $("signout").hidden = !token;
  $("signin-open").hidden = !!token;
  $("who").textContent = token ? `Signed in as ${principalOf(token)}` : "";
}

/** The JWT's subject for display (the server checks the token, not this). */
function principalOf(t: string): string {
  const parts = t.split(".");
  if (parts.length === 3) {
    try {
      const payload = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
      if (typeof payload.sub === "string") return payload.sub;
    } catch {
      // not a JWT: a static token
    }
  }
  return "token holder";
}

function signIn(t: string) {
  token = t.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  client = makeClient();
  showWho();
  start();
}

// ---- keyboard ----

function onKey(e: KeyboardEvent) {
  const target = e.target as HTMLElement;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (target.closest("input, textarea, select, dialog")) return;
  const items = view.kind === "pending" ? sortedPending() : history;
  const i = items.findIndex((a) => a.id === selectedId);
  switch (e.key) {
    case "j":
      if (items.length) select(items[Math.min(i + 1, items.length - 1)].id);
      break;
    case "k":
      if (items.length) select(items[Math.max(i - 1, 0)].id);
      break;
    case "a":
    case "r": {
      const a = current();
      if (!a || a.status !== ApprovalStatus.PENDING) return;
      decideMode = e.key === "a" ? "approve" : "reject";
      const help = document.getElementById("reason-help");
      if (help) help.textContent = `Press Enter to ${decideMode}, Esc to cancel.`;
      $("detail").dataset.mode = decideMode;
      $("reason")?.focus();
      break;
    }
    case "/":
      $("f-type").focus();
      break;
    case "?":
      ($("help") as HTMLDialogElement).showModal();
      break;
    default:
      return;
  }
  e.preventDefault();
}

// ---- start ----

function start() {
  notice("");
  if (view.kind === "pending") void watch();
  else if (view.kind === "history") void loadHistory();
  else void loadOne(view.id);
}

function init() {
  ($("f-type") as HTMLInputElement).value = filters.types.join(", ");
  ($("f-agent") as HTMLInputElement).value = filters.agent;
  ($("f-label") as HTMLInputElement).value = Object.entries(filters.labels).map(([k, v]) => `${k}=${v}`).join(", ");
  ($("f-status") as HTMLSelectElement).value = filters.status;
  $("f-status-label").hidden = view.kind !== "history";
  $("list-title").textContent = view.kind === "pending" ? "Pending" : view.kind === "history" ? "History" : "Approval";
  $(view.kind === "history" ? "nav-history" : "nav-pending").setAttribute("aria-current", "page");
  if (view.kind === "one") $("filters").hidden = true;

  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const t of ($("f-type") as HTMLInputElement).value.split(",").map((s) => s.trim()).filter(Boolean)) q.append("type", t);
    const agent = ($("f-agent") as HTMLInputElement).value.trim();
    if (agent) q.set("agent", agent);
    for (const l of ($("f-label") as HTMLInputElement).value.split(",").map((s) => s.trim()).filter(Boolean)) q.append("label", l);
    const status = ($("f-status") as HTMLSelectElement).value;
    if (status && view.kind === "history") q.set("status", status);
    const search = q.toString();
    location.search = search ? `?${search}` : "";
  });
  $("more").addEventListener("click", () => void loadHistory(true));
  $("help-open").addEventListener("click", () => ($("help") as HTMLDialogElement).showModal());
  $("signin-open").addEventListener("click", () => openSignIn());
  $("signin-cancel").addEventListener("click", () => ($("signin") as HTMLDialogElement).close());
  $("signout").addEventListener("click", () => signIn(""));
  $("notify").addEventListener("click", () => void toggleNotify());
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ($("signin") as HTMLDialogElement).close();
    signIn(($("token") as HTMLInputElement).value);
  });
  document.addEventListener("keydown", onKey);
  // Countdowns tick in place.
  setInterval(() => {
    for (const c of document.querySelectorAll<HTMLElement>(".countdown[data-deadline]")) {
      const d = Number(c.dataset.deadline);
      if (!d) continue;
      c.textContent = countdownText(d, c.dataset.approves === "true");
    }
  }, 1000);
  showWho();
  showNotify();
  start();
}

init();
