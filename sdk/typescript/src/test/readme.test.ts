// The README's example runs as written (but for the address), from a module
// that imports the package by its name.
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createNodeClient } from "../node.js";

const packageDir = fileURLToPath(new URL("../../", import.meta.url));

it("the README example prints the decision a human made meanwhile", async () => {
  const readme = readFileSync(join(packageDir, "README.md"), "utf8");
  const example = /<!-- example -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example, "README.md has no example");
  // Inside the package, so that "@approvald/client/node" resolves to it.
  const dir = mkdtempSync(join(packageDir, "readme-example-"));
  try {
    const file = join(dir, "example.mjs");
    writeFileSync(file, example.replaceAll("127.0.0.1:50051", process.env.APPROVALD_ADDR_A!));
    const output = new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [file], { timeout: 60_000 }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout))));
    const human = createNodeClient(`http://${process.env.APPROVALD_ADDR_B}`);
    for (let i = 0; i < 400; i++) {
      let answered = false;
      for await (const a of human.listApprovals({ approvalTypes: ["deploy:production"], statuses: [1] })) {
        await human.respond(a.id, true, { responder: "alice", reason: "ok" });
        answered = true;
      }
      if (answered) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await output, "approved: true by alice\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
