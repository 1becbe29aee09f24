// The README's examples run as written (but for the address), from a module
// that imports the package by its name; the votes example against an
// approvald of its own reading the README's policy.
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createNodeClient } from "../node.js";
import { ApprovalStatus } from "../index.js";
import { Replica, freeAddr } from "./kit.js";

const packageDir = fileURLToPath(new URL("../../", import.meta.url));
const readme = readFileSync(join(packageDir, "README.md"), "utf8");

/** The README block after `<!-- marker -->`, fenced as `lang`. */
function block(marker: string, lang: string): string {
  const found = new RegExp(`<!-- ${marker} -->\n\`\`\`${lang}\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1];
  assert.ok(found, `README.md has no ${marker} block`);
  return found;
}

/**
 * Runs a README example against `addr` while `voters` approve (each once)
 * the pending deploy:production approval there; resolves with its output.
 */
async function runWhileApproving(example: string, addr: string, voters: string[]): Promise<string> {
  // Inside the package, so that "@approvald/client/node" resolves to it.
  const dir = mkdtempSync(join(packageDir, "readme-example-"));
  try {
    const file = join(dir, "example.mjs");
    writeFileSync(file, example.replaceAll("127.0.0.1:50051", addr));
    const output = new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [file], { timeout: 60_000 }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout))));
    const human = createNodeClient(`http://${addr}`);
    let id = "";
    for (let i = 0; i < 400 && !id; i++) {
      for await (const a of human.listApprovals({ approvalTypes: ["deploy:production"], statuses: [ApprovalStatus.PENDING] })) id = a.id;
      if (!id) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(id, "the example's approval became pending");
    for (const voter of voters) await human.respond(id, true, { responder: voter, reason: "ok" });
    return await output;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

it("the README example prints the decision a human made meanwhile", async () => {
  const output = await runWhileApproving(block("example", "ts"), process.env.APPROVALD_ADDR_A!, ["alice"]);
  assert.equal(output, "approved: true by alice\n");
});

it("the README votes example, under the README's policy, prints both voters", { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(packageDir, "readme-policy-"));
  const config = join(dir, "approvald.toml");
  writeFileSync(config, block("policy", "toml"));
  const server = await Replica.start(await freeAddr(), `ts-readme-${randomUUID()}`, "--config", config);
  try {
    const output = await runWhileApproving(block("example: votes", "ts"), server.addr, ["alice", "bob"]);
    assert.equal(output, "approved: true by alice and bob (2 needed)\n");
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
