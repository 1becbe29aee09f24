// The inbox against two approvald replicas on one Redis: the page is
// connected to B, agents talk to A.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { item, live, openPage, screenshot, seriousA11yIssues, startApprovald, stopAll, twoReplicas, until } from "./harness.mjs";

describe("inbox on two replicas sharing Redis", () => {
  let redis, a, b, browser, sdk, agent, human;

  before(async () => {
    ({ sdk, redis, a, b, agent, human, browser } = await twoReplicas());
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });


  test("an approval requested on replica A appears within 1 s on B, and a keyboard approval with a reason releases the agent", async () => {
    const page = await openPage(browser, `${b.url}/`);
    await live(page);
    const request = {
      approvalType: "deploy:production",
      context: { service: "billing", version: "2.4.1", diff: { replicas: { before: 3, after: 5 } }, changes: Array.from({ length: 30 }, (_, i) => `commit ${i}`) },
      labels: { team: "billing" },
      timeoutSeconds: 600,
      idempotencyKey: "release-2.4.1",
    };
    const decision = agent.requestApproval(request);
    decision.catch(() => {}); // awaited below; never an unhandled rejection
    // The same key attaches to the agent's approval: it exists from here on.
    const created = await agent.createApproval(request);
    const exists = Date.now();
    await item(page, created.id).waitFor({ timeout: 1000 });
    console.log(`appeared in the page ${Date.now() - exists} ms after it was created`);
    assert.match(await page.title(), /^\(1\) /);
    await page.locator("#me").fill("alice");
    await page.locator("#me").blur();
    await page.keyboard.press("j");
    await page.keyboard.press("a");
    await page.keyboard.type("checked the diff");
    await page.keyboard.press("Enter");
    await page.locator("#recent", { hasText: "approved by alice" }).waitFor({ timeout: 10_000 }).catch(async (e) => {
      await screenshot(page, "fail.png");
      console.log(await page.locator("#notice").textContent(), await page.locator("#detail").textContent(), page.errors);
      throw e;
    });
    const d = await decision;
    assert.equal(d.approved, true);
    assert.equal(d.decidedBy, "alice");
    assert.equal(d.reason, "checked the diff");
    assert.deepEqual(page.errors, []);
  });

  test("a second tab decides first: the first shows who won, and only one decision is recorded", async () => {
    const created = await agent.createApproval({ approvalType: "refund:large", context: { amount: 1200, currency: "EUR" } });
    const first = await openPage(browser, `${b.url}/`);
    const second = await openPage(browser, `${a.url}/`);
    await Promise.all([item(first, created.id).waitFor(), item(second, created.id).waitFor()]);
    await item(first, created.id).click();
    await item(second, created.id).click();
    await second.locator("#me").fill("bob");
    await second.locator("#reason").fill("customer verified");
    await second.getByRole("button", { name: "Approve" }).click();
    await first.locator("#detail", { hasText: "by bob" }).waitFor();
    await first.locator("#recent", { hasText: "approved by bob" }).waitFor();
    assert.equal(await item(first, created.id).count(), 0);
    const final = await human.getApproval(created.id);
    assert.equal(final.decidedBy, "bob");
    let seen = 0;
    for await (const x of human.listApprovals({})) if (x.id === created.id) seen++;
    assert.equal(seen, 1);
    assert.deepEqual([...first.errors, ...second.errors], []);
  });

  test("a decision on an approval someone else already decided shows who, when and why", async () => {
    const created = await agent.createApproval({ approvalType: "db:drop", context: { table: "events" } });
    const page = await openPage(browser, "about:blank");
    // A page that has not heard of the decision yet (its live stream is cut).
    await page.route("**/approval.v1.ApprovalService/WatchPending", (route) => route.abort());
    await page.goto(`${b.url}/approvals/${created.id}`);
    await page.locator("#detail h2", { hasText: "db:drop" }).waitFor();
    await human.respond(created.id, false, { responder: "carol", reason: "not during the freeze" });
    await page.locator("#me").fill("alice");
    await page.locator("#reason").fill("fine");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.locator("#notice", { hasText: "Already rejected by carol" }).waitFor();
    assert.match(await page.locator("#notice").textContent(), /not during the freeze/);
    assert.equal((await human.getApproval(created.id)).decidedBy, "carol");
  });

  test("a context digest that differs from what the server holds is refused and the page says so", async () => {
    const created = await agent.createApproval({ approvalType: "deploy:staging", context: { version: "1.0.0" } });
    const page = await openPage(browser, "about:blank");
    // Show the page a different digest than the approval's (same length, so
    // the gRPC-Web frame stays valid): what a changed context looks like.
    const crafted = `sha256:${"0".repeat(64)}`;
    await page.route("**/approval.v1.ApprovalService/GetApproval", async (route) => {
      const response = await route.fetch();
      const body = Buffer.from((await response.body()).toString("latin1").replace(created.contextDigest, crafted), "latin1");
      await route.fulfill({ response, body });
    });
    await page.goto(`${b.url}/approvals/${created.id}`);
    await page.locator("#detail .digest", { hasText: crafted }).waitFor();
    await page.locator("#me").fill("alice");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.locator("#notice", { hasText: "context digest differs" }).waitFor();
    const after = await human.getApproval(created.id);
    assert.equal(after.status, sdk.ApprovalStatus.PENDING, "a refused decision changed the approval");
  });

  test("after a server restart the page shows reconnecting, then resumes with no duplicate and no missed item", async () => {
    const before = await agent.createApproval({ approvalType: "restart:before", context: {} });
    const page = await openPage(browser, `${b.url}/`);
    await item(page, before.id).waitFor();
    await live(page);
    await b.stop();
    await page.locator("#conn", { hasText: "Reconnecting" }).waitFor();
    const missed = await agent.createApproval({ approvalType: "restart:missed", context: {} });
    await human.respond(before.id, true, { responder: "dave", reason: "ok" });
    b = await startApprovald({ redis, port: b.port });
    await item(page, missed.id).waitFor({ timeout: 15_000 });
    await live(page);
    assert.equal(await item(page, missed.id).count(), 1);
    assert.equal(await item(page, before.id).count(), 0, "a decided approval stayed in the list");
    await page.locator("#recent", { hasText: "approved by dave" }).waitFor();
    const ids = await page.locator("#list .item").evaluateAll((els) => els.map((e) => e.dataset.id));
    assert.equal(new Set(ids).size, ids.length, "duplicate items");
    // The only console errors allowed are the refused connections while B was down.
    assert.deepEqual(page.errors.filter((e) => !e.includes("net::ERR_")), []);
  });

  test("after a network drop the page shows reconnecting, then resumes with no duplicate and no missed item", async () => {
    const before = await agent.createApproval({ approvalType: "offline:before", context: {} });
    const page = await openPage(browser, `${b.url}/`);
    await item(page, before.id).waitFor();
    await live(page);
    await page.context().setOffline(true);
    await page.locator("#conn", { hasText: "Reconnecting" }).waitFor({ timeout: 15_000 });
    // While the page is offline: one new, one decided.
    const missed = await agent.createApproval({ approvalType: "offline:missed", context: {} });
    await human.respond(before.id, true, { responder: "erin", reason: "ok" });
    await page.context().setOffline(false);
    await item(page, missed.id).waitFor({ timeout: 15_000 });
    await live(page);
    assert.equal(await item(page, missed.id).count(), 1);
    assert.equal(await item(page, before.id).count(), 0, "a decided approval stayed in the list");
    await page.locator("#recent", { hasText: "approved by erin" }).waitFor();
    const ids = await page.locator("#list .item").evaluateAll((els) => els.map((e) => e.dataset.id));
    assert.equal(new Set(ids).size, ids.length, "duplicate items");
    assert.deepEqual(page.errors.filter((e) => !e.includes("net::ERR_")), []);
  });

  test("a different approval re-attached with the same key is refused, and the page approves exactly what it showed", async () => {
    const request = { approvalType: "deploy:billing", context: { version: "1.0.0" }, timeoutSeconds: 600, idempotencyKey: "billing-release" };
    const created = await agent.createApproval(request);
    const waiting = agent.requestApproval(request);
    waiting.catch(() => {}); // awaited below
    const page = await openPage(browser, `${b.url}/approvals/${created.id}`);
    await page.locator("#detail .digest", { hasText: created.contextDigest }).waitFor();
    // The same key with another context: not the approval the human is looking at.
    const refused = await agent.createApproval({ ...request, context: { version: "6.6.6" } }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(refused instanceof sdk.ConnectError, "a re-attach with a different context was accepted");
    assert.match(refused.rawMessage, /idempotency_key .* different request/);
    assert.equal((await human.getApproval(created.id)).contextDigest, created.contextDigest);
    await page.locator("#me").fill("alice");
    await page.locator("#reason").fill("1.0.0 is fine");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.locator("#notice", { hasText: "approved by alice" }).waitFor();
    const decision = await waiting;
    assert.equal(decision.approved, true);
    assert.equal(decision.approval.id, created.id);
    assert.deepEqual(decision.approval.context, { version: "1.0.0" });
    assert.deepEqual(page.errors, []);
  });

  test("notifications, once turned on by a click, fire for a new approval while the tab is hidden and not while it is shown", async () => {
    const page = await openPage(browser, `${b.url}/`, undefined, async (context) => {
      await context.grantPermissions(["notifications"], { origin: b.url });
      // Watch the browser's own Notification, and let the test hide the tab.
      await context.addInitScript(() => {
        window.shown = [];
        window.asked = 0;
        window.tabHidden = false;
        window.Notification = new Proxy(window.Notification, {
          construct(Real, args) {
            window.shown.push({ title: args[0], tag: args[1]?.tag });
            return new Real(...args);
          },
          get(Real, key) {
            if (key === "requestPermission") return (...a) => (window.asked++, Real.requestPermission(...a));
            return Reflect.get(Real, key);
          },
        });
        Object.defineProperty(document, "visibilityState", { get: () => (window.tabHidden ? "hidden" : "visible") });
      });
    });
    await live(page);
    const notify = page.getByRole("button", { name: "Notify me" });
    await notify.waitFor();
    // Off until asked for: a hidden tab gets nothing, and nothing was asked on load.
    await page.evaluate(() => (window.tabHidden = true));
    const unasked = await agent.createApproval({ approvalType: "notify:off", context: {} });
    await item(page, unasked.id).waitFor();
    assert.equal(await page.evaluate(() => window.asked), 0, "permission asked without a user action");
    await page.evaluate(() => (window.tabHidden = false));
    await notify.click();
    await page.getByRole("button", { name: "Notifications on" }).waitFor();
    assert.equal(await page.evaluate(() => window.asked), 1);
    const shown = await agent.createApproval({ approvalType: "notify:visible", context: {} });
    await item(page, shown.id).waitFor();
    await page.evaluate(() => (window.tabHidden = true));
    const hidden = await agent.createApproval({ approvalType: "notify:hidden", context: {} });
    await item(page, hidden.id).waitFor();
    assert.deepEqual(await page.evaluate(() => window.shown), [{ title: "Approval needed: notify:hidden", tag: hidden.id }]);
    assert.deepEqual(page.errors, []);
  });

  test("filters in the URL, history paging and the approval page by id", async () => {
    const mine = [];
    for (let i = 0; i < 30; i++) mine.push(await agent.createApproval({ approvalType: `payout:eu`, context: { n: i }, labels: { team: "billing" } }));
    await agent.createApproval({ approvalType: "payout:us", context: {}, labels: { team: "other" } });
    const page = await openPage(browser, `${b.url}/?type=payout:*&label=team=billing`);
    await live(page);
    await until("30 filtered items", async () => (await page.locator("#list .item").count()) === 30);
    assert.equal(await page.locator("#list .item", { hasText: "payout:us" }).count(), 0);
    assert.equal(await page.locator("#f-type").inputValue(), "payout:*");
    await page.goto(`${b.url}/history?type=payout:eu&status=pending`);
    await until("first page", async () => (await page.locator("#list .item").count()) === 25);
    await page.getByRole("button", { name: "Load more" }).click();
    await until("second page", async () => (await page.locator("#list .item").count()) === 30);
    assert.equal(await page.locator("#more").isHidden(), true);
    await page.goto(`${b.url}/approvals/${mine[7].id}`);
    await page.locator("#detail", { hasText: mine[7].id }).waitFor();
    await page.locator("#detail .j-num", { hasText: "7" }).waitFor();
    assert.deepEqual(page.errors, []);
  });

  test("the pending page has no serious accessibility issue, and screenshots at desktop and phone width", async () => {
    await agent.createApproval({
      approvalType: "deploy:production",
      context: { service: "checkout", version: "3.1.0", image: "registry.example.com/checkout@sha256:4f9c0e", replicas: { before: 4, after: 6 }, notes: "Adds the new payment provider behind a flag. ".repeat(6) },
      labels: { team: "payments", env: "prod" },
      timeoutSeconds: 3600,
    });
    for (const [name, viewport] of [["inbox-desktop.png", { width: 1280, height: 800 }], ["inbox-phone.png", { width: 390, height: 844 }]]) {
      const page = await openPage(browser, `${b.url}/?type=deploy:*`, viewport);
      await live(page);
      await page.locator("#list .item").first().waitFor();
      await page.keyboard.press("k");
      assert.deepEqual(await seriousA11yIssues(page), []);
      await screenshot(page, name);
      assert.deepEqual(page.errors, []);
    }
    const history = await openPage(browser, `${b.url}/history`);
    await history.locator("#list .item").first().waitFor();
    assert.deepEqual(await seriousA11yIssues(history), []);
  });
});
