/** The route a request matched, as its pattern: a bounded label for metrics and span names. */
import type { Context } from "hono";
import { matchedRoutes } from "hono/route";

/**
 * The pattern of the route that answered (`/runs/:run_id`), never the path (which holds ids);
 * `undefined` when no route did. Middleware match any method, so they are skipped.
 */
export function routePattern(c: Context): string | undefined {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const route = routes[i]!;
    if (route.method !== "ALL") return route.path;
  }
  return undefined;
}
