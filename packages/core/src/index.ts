/**
 * `@acp/core`: an Agent Communication Protocol (ACP 0.2) server for TypeScript.
 * @module
 */
export * from "./models.ts";
export * from "./store.ts";
