// The inbox under policies (a `--config` file with `[[policies]]`): an
// approval that needs two approvals shows its tally and its votes, a vote
// updates the card in place in every open page, a human who voted sees it,
// a changed second vote is refused in words, and on_timeout = approve says
// what doing nothing means. Two approvald replicas on one Redis.
//
// UPDATE_SCREENSHOTS=1 also writes the README's screenshots into docs/.
import assert from "node:assert/strict";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ROOT, item, live, openPage, screenshot, seriousA11yIssues, stopAll, twoReplicas } from "./harness.mjs";

const POLICIES = `
[[policies]]
approval_types = ["deploy:*"]
required_approvals = 2

[[policies]]
approval_types = ["spend:*"]
on_timeout = "approve"
`;

describe("inbox with policies: votes and on_timeout", () => {
  let redis, a, b, browser, sdk, agent, human;

  before(async () => {
    const config = join(mkdtempSync(join(tmpdir(), "inbox-policies-")), "config.toml");
    writeFileSync(config, POLICIES);
    ({ sdk, redis, a, b, agent, human, browser } = await twoReplicas({ args: ["--config", config] }));
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });

  /** Records every element removed from the page's #list from now on. */
  const watchRemovals = (page) =>
    page.evaluate(() => {
      window.removed = [];
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.removedNodes) window.removed.push(n.dataset?.id ?? n.nodeName);
      }).observe(document.getElementById("list"), { childList: true });
    });
  const order = (page) => page.locator("#list .item").evaluateAll((els) => els.map((e) => e.dataset.id));

  test("a vote by one human updates the card in place in another browser, and a second human's approval decides", async () => {
    const older = await agent.createApproval({ approvalType: "refund:small", context: { amount: 20 } });
    const created = await agent.createApproval({ approvalType: "deploy:production", context: { version: "5.0.0" }, timeoutSeconds: 600 });
    const newer = await agent.createApproval({ approvalType: "refund:other", context: { amount: 30 } });
    assert.equal(created.requiredApprovals, 2, "the policy file was not applied");
    const first = await openPage(browser, `${b.url}/`);
    const second = await openPage(browser, `${a.url}/`);
    await Promise.all([item(first, created.id).waitFor(), item(second, created.id).waitFor()]);
    await live(first);
    await item(first, created.id).click();
    assert.match(await item(first, created.id).textContent(), /0 of 2 approvals/);
    await first.locator("#tally", { hasText: "0 of 2 approvals (policy deploy:*)" }).waitFor();
    const before = await order(first);
    assert.deepEqual(before.filter((id) => [older.id, created.id, newer.id].includes(id)), [older.id, created.id, newer.id]);
    const card = await item(first, created.id).elementHandle();
    await watchRemovals(first);

    // alice votes in the second browser: her vote does not decide.
    await item(second, created.id).click();
    await second.locator("#me").fill("alice");
    await second.locator("#reason").fill("diff reviewed");
    await second.getByRole("button", { name: "Approve", exact: true }).click();
    await second.locator("#notice", { hasText: "your vote is recorded, 1 of 2 approvals" }).waitFor();
    await second.locator("#my-vote", { hasText: "You approved this" }).waitFor();
    assert.equal(await second.getByRole("button", { name: "Approve", exact: true }).isDisabled(), true, "a human who voted can vote again");
    assert.equal(await second.getByRole("button", { name: "Reject", exact: true }).isDisabled(), true);
    await item(second, created.id).locator(".tally", { hasText: "1 of 2 approvals · you approved" }).waitFor();
    // The keyboard does not get around the disabled buttons.
    await second.locator("#detail h2").click();
    await second.keyboard.press("r");
    await second.keyboard.type("changed my mind");
    await second.keyboard.press("Enter");
    await second.locator("#notice", { hasText: "You already approved this; a vote cannot be changed" }).waitFor();

    // The first browser sees it live, without reload: the same card, updated.
    await item(first, created.id).locator(".tally", { hasText: "1 of 2 approvals" }).waitFor({ timeout: 5000 });
    await item(first, created.id).locator(".vote", { hasText: /alice approved at .*: “diff reviewed”/ }).waitFor();
    await first.locator("#tally", { hasText: "1 of 2 approvals" }).waitFor();
    await first.locator("#votes li", { hasText: "alice approved" }).waitFor();
    assert.match(await first.locator("#votes li").first().textContent(), /diff reviewed/);
    assert.equal(await card.evaluate((e) => e.isConnected), true, "the card was replaced instead of updated");
    assert.deepEqual(await first.evaluate(() => window.removed), [], "the list was rebuilt");
    assert.deepEqual(await order(first), before, "the list was reordered");
    assert.equal(await item(first, created.id).count(), 1);
    assert.equal(await first.locator("#my-vote").isHidden(), true, "the first browser is not alice");

    // bob, in the first browser, decides.
    await first.locator("#me").fill("bob");
    await first.locator("#reason").fill("second pair of eyes");
    await first.getByRole("button", { name: "Approve", exact: true }).click();
    await first.locator("#recent", { hasText: "approved by bob" }).waitFor();
    await second.locator("#recent", { hasText: "approved by bob" }).waitFor();
    assert.equal(await item(second, created.id).count(), 0);
    const final = await human.getApproval(created.id);
    assert.equal(final.status, sdk.ApprovalStatus.APPROVED);
    assert.deepEqual(
      final.votes.map((v) => [v.voter, v.reason]),
      [
        ["alice", "diff reviewed"],
        ["bob", "second pair of eyes"],
      ],
    );
    assert.deepEqual([...first.errors, ...second.errors], []);
  });

  test("a human who already voted sees it on the approval's page, and a changed second vote is refused in words", async () => {
    const created = await agent.createApproval({ approvalType: "deploy:staging", context: { version: "5.1.0" } });
    const page = await openPage(browser, "about:blank");
    // A page that has not heard of the vote yet (its live stream is cut).
    await page.route("**/approval.v1.ApprovalService/WatchPending", (route) => route.abort());
    await page.goto(`${b.url}/approvals/${created.id}`);
    await page.locator("#detail h2", { hasText: "deploy:staging" }).waitFor();
    await page.locator("#me").fill("alice");
    // alice approves from elsewhere (another tab, approvalctl) while this page is open.
    await human.respond(created.id, true, { responder: "alice", reason: "fine by me" });
    await page.locator("#reason").fill("on second thought, no");
    await page.getByRole("button", { name: "Reject", exact: true }).click();
    const notice = page.locator("#notice", { hasText: "You already approved this" });
    await notice.waitFor();
    assert.match(await notice.textContent(), /“fine by me”.*a vote cannot be changed or cast twice\. Nothing changed \(1 of 2 approvals so far\)/);
    // The page now shows the vote, and takes no second one.
    await page.locator("#votes li", { hasText: "alice approved" }).waitFor();
    await page.locator("#my-vote", { hasText: "You approved this" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Reject", exact: true }).isDisabled(), true);
    const now = await human.getApproval(created.id);
    assert.equal(now.status, sdk.ApprovalStatus.PENDING);
    assert.deepEqual(
      now.votes.map((v) => [v.voter, v.decision]),
      [["alice", 1]],
      "the refused vote changed the approval",
    );

    // Opened afresh as alice: it says so at once; as someone else, it does not.
    await page.reload();
    await page.locator("#my-vote", { hasText: "You approved this" }).waitFor();
    assert.match(await page.locator("#my-vote").textContent(), /waits for 1 more approval from others/);
    assert.equal(await page.getByRole("button", { name: "Approve", exact: true }).isDisabled(), true);
    await page.locator("#me").fill("carol");
    assert.equal(await page.locator("#my-vote").isHidden(), true);
    assert.equal(await page.getByRole("button", { name: "Approve", exact: true }).isDisabled(), false);
    // The only console errors are the cut stream's.
    assert.deepEqual(page.errors.filter((e) => !e.includes("net::ERR_")), []);
  });

  test("the approval's own page follows its votes live, and shows who decided when the last vote lands", async () => {
    const created = await agent.createApproval({ approvalType: "deploy:eu", context: { version: "5.2.0" } });
    const other = await agent.createApproval({ approvalType: "deploy:eu", context: { version: "9.9.9" } });
    const page = await openPage(browser, `${b.url}/approvals/${created.id}`);
    await page.locator("#tally", { hasText: "0 of 2 approvals" }).waitFor();
    await live(page);
    await page.locator("#reason").fill("typing while others vote");
    await human.respond(other.id, true, { responder: "zoe", reason: "another approval" });
    await human.respond(created.id, true, { responder: "alice", reason: "looks right" });
    await page.locator("#votes li", { hasText: "alice approved" }).waitFor({ timeout: 5000 });
    await page.locator("#tally", { hasText: "1 of 2 approvals" }).waitFor();
    assert.equal(await page.locator("#votes li").count(), 1, "a vote on another approval was shown");
    assert.equal(await page.locator("#reason").inputValue(), "typing while others vote", "the update wiped what the human was typing");
    await human.respond(created.id, true, { responder: "bob", reason: "me too" });
    await page.locator("#detail", { hasText: "by bob" }).waitFor({ timeout: 5000 });
    await page.locator("#detail .status", { hasText: "approved" }).waitFor();
    assert.equal(await page.locator("#votes li").count(), 2);
    assert.equal(await page.locator(".decide").count(), 0, "a final approval still offers a decision");
    assert.deepEqual(page.errors, []);
  });

  test("an approval whose policy approves it at the deadline says so on its card and its page; others do not", async () => {
    const spend = await agent.createApproval({ approvalType: "spend:cloud", context: { monthly_usd: 900 }, timeoutSeconds: 3600 });
    const deploy = await agent.createApproval({ approvalType: "deploy:canary", context: {}, timeoutSeconds: 3600 });
    const page = await openPage(browser, `${b.url}/`);
    await live(page);
    await item(page, spend.id).locator(".fate", { hasText: "approves itself at the deadline" }).waitFor();
    assert.match(await item(page, spend.id).locator(".countdown").textContent(), /^approves itself in \d/);
    assert.equal(await item(page, deploy.id).locator(".fate").count(), 0);
    assert.match(await item(page, deploy.id).locator(".countdown").textContent(), /^expires in \d/);
    await item(page, spend.id).click();
    await page.locator("#detail", { hasText: "it approves itself at the deadline (its policy: on_timeout = approve)" }).waitFor();
    await item(page, deploy.id).click();
    await page.locator("#detail", { hasText: "it expires at the deadline and the gate does not proceed" }).waitFor();
    assert.deepEqual(await seriousA11yIssues(page), []);
    assert.deepEqual(page.errors, []);
  });

  test("screenshots of the inbox at desktop and phone width stay small (UPDATE_SCREENSHOTS=1 writes docs/)", async () => {
    const team = { team: "payments", env: "prod" };
    const release = await agent.createApproval({
      approvalType: "deploy:checkout",
      context: {
        service: "checkout",
        version: "3.1.0",
        image: "registry.example.com/checkout@sha256:4f9c0e",
        replicas: { before: 4, after: 6 },
        notes: "Adds the new payment provider behind a flag. ".repeat(4),
        commits: Array.from({ length: 6 }, (_, i) => `checkout: change ${i + 1}`),
      },
      labels: team,
      timeoutSeconds: 3600,
    });
    await human.respond(release.id, true, { responder: "alice", reason: "diff and canary look good" });
    await agent.createApproval({ approvalType: "spend:gpu-cluster", context: { monthly_usd: 4200 }, labels: team, timeoutSeconds: 1800 });
    await agent.createApproval({ approvalType: "refund:large", context: { amount: 1200, currency: "EUR" }, labels: team, timeoutSeconds: 900 });
    const dirs = process.env.UPDATE_SCREENSHOTS === "1" ? [undefined, join(ROOT, "docs")] : [undefined];
    for (const [name, viewport] of [
      ["inbox-desktop.png", { width: 1280, height: 800 }],
      ["inbox-phone.png", { width: 390, height: 844 }],
    ]) {
      const page = await openPage(browser, `${b.url}/?label=team=payments`, viewport);
      await live(page);
      await item(page, release.id).click();
      await page.locator("#tally", { hasText: "1 of 2 approvals" }).waitFor();
      await page.evaluate(() => {
        document.activeElement?.blur();
        window.scrollTo(0, 0);
      });
      for (const dir of dirs) {
        const path = await screenshot(page, name, dir);
        const size = statSync(path).size;
        console.log(`${path}: ${size} bytes`);
        assert.ok(size < 150_000, `${name} is ${size} bytes`);
      }
      assert.deepEqual(page.errors, []);
    }
  });
});
