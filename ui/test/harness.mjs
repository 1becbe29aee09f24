// The browser suite's fixtures: real redis-server and approvald processes on
// free ports, headless Chromium from the distribution (never downloaded),
// and the SDK for agents. Everything started here is stopped by `stopAll`.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";

export const UI = join(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = join(UI, "..");
const BIN = process.env.APPROVALD_BIN ?? join(ROOT, "target/debug/approvald");
export const SHOTS = process.env.SCREENSHOT_DIR ?? join(UI, "test-results");
const children = new Set();

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args, name) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const keep = (d) => {
    log = (log + d).slice(-20_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  child.log = () => log;
  child.name = name;
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export async function until(what, probe, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedis() {
  const port = await freePort();
  const child = run("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], "redis");
  await until("redis", async () => child.log().includes("Ready to accept connections"));
  return { url: `redis://127.0.0.1:${port}`, child };
}

/** Starts approvald; `port` reuses a port (a restart). */
export async function startApprovald({ redis, port, args = [] } = {}) {
  port ??= await freePort();
  const metrics = await freePort();
  const argv = ["--listen", `127.0.0.1:${port}`, "--metrics-listen", `127.0.0.1:${metrics}`, "--shutdown-grace", "1s", ...args];
  if (redis) argv.push("--redis-url", redis.url, "--redis-prefix", "inbox-test");
  const child = run(BIN, argv, `approvald:${port}`);
  const url = `http://127.0.0.1:${port}`;
  await until(`approvald on ${port}`, async () => (await fetch(`${url}/`)).ok);
  return { url, port, child, stop: () => stop(child) };
}

export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(t);
}

export async function stopAll() {
  await Promise.all([...children].map(stop));
}

/** An auth file with tokens; returns its path and the raw tokens by principal. */
export function authFile(entries) {
  const dir = mkdtempSync(join(tmpdir(), "inbox-auth-"));
  const tokens = {};
  let toml = "";
  for (const { principal, roles } of entries) {
    const token = randomBytes(24).toString("hex");
    tokens[principal] = token;
    const sha = createHash("sha256").update(token).digest("hex");
    toml += `[[tokens]]\nprincipal = "${principal}"\nroles = ${JSON.stringify(roles)}\nsha256 = "${sha}"\n\n`;
  }
  const path = join(dir, "auth.toml");
  writeFileSync(path, toml);
  return { path, tokens };
}

let sdk;
/** The TypeScript SDK (web entry point), bundled for Node once. */
export async function loadSdk() {
  if (!sdk) {
    const out = join(mkdtempSync(join(tmpdir(), "inbox-sdk-")), "sdk.mjs");
    await build({ entryPoints: [join(UI, "test/sdk.ts")], bundle: true, platform: "node", format: "esm", outfile: out, nodePaths: [join(UI, "node_modules")], logLevel: "warning" });
    sdk = await import(out);
  }
  return sdk;
}

/**
 * Two approvald replicas on one Redis (with `args` besides), an agent's
 * client ("deployer") and a human's, both of A, and the browser.
 */
export async function twoReplicas({ args = [] } = {}) {
  const sdk = await loadSdk();
  const redis = await startRedis();
  const [a, b] = await Promise.all([startApprovald({ redis, args }), startApprovald({ redis, args })]);
  const agent = sdk.createWebClient(a.url, { agentId: "deployer" });
  const human = sdk.createWebClient(a.url);
  return { sdk, redis, a, b, agent, human, browser: await launch() };
}

/** Waits until the page's live connection is up. */
export const live = (page) => page.locator("#conn", { hasText: "Live" }).waitFor();

/** The list item of approval `id`. */
export const item = (page, id) => page.locator(`#list .item[data-id="${id}"]`);

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * A page that records console errors and uncaught exceptions; `setup(context)`
 * runs before the page opens (permissions, init scripts).
 */
export async function openPage(browser, url, viewport = { width: 1280, height: 800 }, setup = async () => {}) {
  const context = await browser.newContext({ viewport });
  await setup(context);
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(m.text());
  });
  page.on("pageerror", (e) => page.errors.push(String(e)));
  await page.goto(url);
  return page;
}

/** Serious or critical accessibility violations found by axe-core. */
export async function seriousA11yIssues(page) {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.help} (${v.nodes.length})`);
}

/** Saves a PNG of the viewport as `name` in `dir` (SCREENSHOT_DIR) and returns its path. */
export async function screenshot(page, name, dir = SHOTS) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  await page.screenshot({ path, fullPage: false });
  return path;
}
