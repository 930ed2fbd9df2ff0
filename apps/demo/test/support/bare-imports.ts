/**
 * The packages a built file imports (`hono`, `@acp/core`), read from its import lines, so a test
 * can check that a published package declares everything its dist needs.
 */
import { readdirSync, readFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join } from "node:path";

/** `@scope/name/sub` → `@scope/name`, `name/sub` → `name`. */
function packageOf(specifier: string): string {
  return specifier
    .split("/")
    .slice(0, specifier.startsWith("@") ? 2 : 1)
    .join("/");
}

const STATIC = /^\s*(?:import|export|\})\b[^\n]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Package names imported by the `.mjs` / `.d.mts` files under `dir`; comments (JSDoc examples) are skipped. */
export function bareImports(dir: string): Set<string> {
  const found = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    if (!/\.(mjs|d\.mts)$/.test(entry)) continue;
    for (const line of readFileSync(join(dir, entry), "utf8").split("\n")) {
      if (/^\s*(\*|\/\/|\/\*)/.test(line)) continue;
      const specifiers = [line.match(STATIC)?.slice(1), [...line.matchAll(DYNAMIC)].map((match) => match[1])].flat();
      for (const specifier of specifiers) {
        if (specifier && !specifier.startsWith(".") && !isBuiltin(specifier)) found.add(packageOf(specifier));
      }
    }
  }
  return found;
}
