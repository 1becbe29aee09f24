// The inbox on the memory store (one process), with authentication on: a
// token sees only what its roles allow, a bad token gets a sign-in error.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { authFile, launch, loadSdk, openPage, startApprovald, stopAll } from "./harness.mjs";

describe("inbox on the memory store with authentication on", () => {
  let server, browser, sdk, auth, bot;

  before(async () => {
    sdk = await loadSdk();
    auth = authFile([
      { principal: "release-bot", roles: ["requester"] },
      { principal: "alice", roles: ["approver:deploy:*"] },
    ]);
    server = await startApprovald({ args: ["--auth-config", auth.path] });
    bot = sdk.createWebClient(server.url, { token: auth.tokens["release-bot"], agentId: "release-bot" });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await stopAll();
  });

  test("a bad token gets a sign-in error", async () => {
    const page = await openPage(browser, `${server.url}/`);
    await page.locator("#signin[open]").waitFor();
    await page.locator("#token").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in", exact: true }).last().click();
    await page.locator("#signin-error", { hasText: "Sign-in needed" }).waitFor();
    assert.equal(await page.locator("#list .item").count(), 0);
  });

  test("a token that may only see deploy:* never sees other items, shows who it signs in as, and decides as its principal", async () => {
    const visible = await bot.createApproval({ approvalType: "deploy:web", context: { v: 1 } });
    const hidden = await bot.createApproval({ approvalType: "db:drop", context: { table: "users" } });
    const page = await openPage(browser, `${server.url}/`);
    await page.locator("#signin[open]").waitFor();
    await page.locator("#token").fill(auth.tokens.alice);
    await page.getByRole("button", { name: "Sign in", exact: true }).last().click();
    await page.locator("#conn", { hasText: "Live" }).waitFor();
    // A static token says nothing about its holder: the server's answer does.
    await page.locator("#who", { hasText: "Signed in as alice" }).waitFor();
    await page.locator(`#list .item[data-id="${visible.id}"]`).waitFor();
    const later = await bot.createApproval({ approvalType: "db:truncate", context: {} });
    const shown = await bot.createApproval({ approvalType: "deploy:api", context: {} });
    await page.locator(`#list .item[data-id="${shown.id}"]`).waitFor();
    for (const id of [hidden.id, later.id]) assert.equal(await page.locator(`[data-id="${id}"]`).count(), 0);
    assert.equal(await page.evaluate(() => document.cookie), "");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("approvald.token")), auth.tokens.alice);
    await page.locator(`#list .item[data-id="${visible.id}"]`).click();
    await page.getByRole("button", { name: "Approve" }).click();
    await page.locator("#recent", { hasText: "approved by alice" }).waitFor();
    const final = await sdk.createWebClient(server.url, { token: auth.tokens.alice }).getApproval(visible.id);
    assert.equal(final.decidedBy, "alice");
    assert.deepEqual(page.errors.filter((e) => !e.includes("401") && !e.includes("Unauthenticated")), []);
  });
});
