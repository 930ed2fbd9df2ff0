/**
 * Builds the playground into dist/playground: one minified ES module for the browser (markdown-it
 * bundled in, nothing loaded from elsewhere) next to the page and its stylesheet.
 */
import { defineConfig } from "tsdown";

export default defineConfig({
  entry: { app: "src/main.ts" },
  outDir: "../dist/playground",
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  dts: false,
  hash: false,
  fixedExtension: false,
  // Everything the page runs is bundled; these are markdown-it and what it imports.
  deps: { onlyBundle: ["markdown-it", "mdurl", "uc.micro", "entities", "linkify-it", "punycode.js"] },
  copy: ["index.html", "style.css"],
});
