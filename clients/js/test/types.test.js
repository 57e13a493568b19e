// The TypeScript declarations: test/types/usage.ts compiles against wsengine-hub.d.ts with
// `tsc --strict` (TypeScript is a dev dependency only), and the module exports what the
// declarations declare.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import * as client from "../wsengine-hub.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

test("test/types/usage.ts compiles against wsengine-hub.d.ts (tsc --strict --noEmit)", { timeout: 60000 }, async () => {
  const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
  const args = [tsc, "--noEmit", "--strict", "--target", "es2022", "--module", "es2022",
    "--moduleResolution", "bundler", "--lib", "es2022,dom", path.join(here, "types", "usage.ts")];
  const { code, output } = await new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, output: stdout + stderr }));
  });
  assert.equal(code, 0, output);
});

test("the module exports every value the declarations export", () => {
  const declarations = readFileSync(path.join(root, "wsengine-hub.d.ts"), "utf8");
  const declared = [...declarations.matchAll(/^export (?:class|function) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(declared.sort(), ["HubClient", "HubError", "backoffDelay", "channelsOfEventId", "httpBaseOf"]);
  for (const name of declared) assert.equal(typeof client[name], "function", name);
});
