// Builds the inbox into dist/ (index.html, app.js, app.css), which approvald
// embeds. `node build.mjs --check` builds into a temporary folder and fails
// when the committed dist/ differs: CI runs it so the bundle is never stale.
import { build } from "esbuild";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "inbox-")) : join(here, "dist");

/** Resolves the SDK's package imports from ui/node_modules. */
const fromUi = {
  name: "dependencies-from-ui",
  setup(build) {
    build.onResolve({ filter: /^@(bufbuild|connectrpc)\// }, (args) => {
      if (args.pluginData === "from-ui") return undefined;
      return build.resolve(args.path, {
        kind: args.kind,
        resolveDir: here,
        pluginData: "from-ui",
      });
    });
  },
};

await build({
  entryPoints: { app: join(here, "src/app.ts") },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  outdir: out,
  // The SDK's sources import its dependencies: resolve them from ui/, even
  // when sdk/typescript has a node_modules of its own (its test suite
  // installs one), so the bundle holds one copy and does not depend on it.
  nodePaths: [join(here, "node_modules")],
  plugins: [fromUi],
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(out, "index.html"));
copyFileSync(join(here, "src/app.css"), join(out, "app.css"));

if (check) {
  const committed = join(here, "dist");
  const names = [...new Set([...readdirSync(out), ...readdirSync(committed)])].sort();
  const stale = names.filter((n) => {
    try {
      return !readFileSync(join(out, n)).equals(readFileSync(join(committed, n)));
    } catch {
      return true;
    }
  });
  rmSync(out, { recursive: true, force: true });
  if (stale.length) {
    console.error(`FAILED: ui/dist is stale (${stale.join(", ")}): run "cd ui && npm ci && npm run build" and commit ui/dist`);
    process.exit(1);
  }
  console.log("ui/dist is up to date");
}
