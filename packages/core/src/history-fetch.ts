/**
 * Fetches a session history item that a client's session descriptor points at on another server.
 * The URL comes from the client, so the fetch is guarded against server-side request forgery:
 * only origins the operator allows, never an internal address (checked on the very addresses
 * the connection uses, so a DNS answer cannot change between check and connect), no redirects,
 * a timeout and a size cap, and the body must be an ACP message.
 */
import { lookup } from "node:dns/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import * as v from "valibot";
import { type Message, MessageSchema } from "./models.ts";
import { isOrigin } from "./origin.ts";
import { isInternalAddress } from "./private-address.ts";

export interface HistoryOptions {
  /**
   * Origins (`https://acp.example.com`, exact match of scheme, host and port) from which session
   * history URLs of a client's session descriptor may be fetched. History items of this
   * deployment are read from the store and need no entry here.
   * @default [] (no item is fetched from another server)
   */
  allowedOrigins?: readonly string[];
  /**
   * Also fetch from hosts that resolve to loopback, link-local, private, shared, unspecified,
   * multicast or reserved addresses. Only for deployments whose peers live on a private network.
   * @default false
   */
  allowPrivateNetworks?: boolean;
  /** Longest time for one item: name lookup, connection and the whole body. @default 5000 */
  timeoutMs?: number;
  /** Largest accepted body of one item, in bytes; the download stops past it. @default 1_048_576 */
  maxBytes?: number;
}

/** The default of every {@link HistoryOptions} field. */
export const HISTORY_DEFAULTS: Readonly<Required<HistoryOptions>> = Object.freeze({
  allowedOrigins: Object.freeze([]) as readonly string[],
  allowPrivateNetworks: false,
  timeoutMs: 5000,
  maxBytes: 1024 * 1024,
});

/** Returns the message behind a remote history URL, or throws a {@link HistoryFetchError}. */
export type HistoryFetcher = (url: string) => Promise<Message>;

/** Why a remote history item was not loaded; its message is safe to log (no credentials, no query). */
export class HistoryFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HistoryFetchError";
  }
}

/** A URL fit for logs: origin and path only, so user info and query tokens stay out. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return "<unparsable URL>";
  }
}

function positiveInteger(value: number, name: string, who: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new TypeError(`[acp] ${who}: history.${name} must be a whole number of at least 1, got ${value}`);
  return value;
}

/** Resolves the host and refuses it when any of its addresses is internal (unless allowed). */
async function resolveHost(
  hostname: string,
  allowPrivateNetworks: boolean,
): Promise<{ address: string; family: number }[]> {
  const host = hostname.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch (error) {
    throw new HistoryFetchError(
      `its host does not resolve (${(error as NodeJS.ErrnoException).code ?? "lookup failed"})`,
    );
  }
  if (addresses.length === 0) throw new HistoryFetchError("its host does not resolve");
  if (!allowPrivateNetworks && addresses.some((entry) => isInternalAddress(entry.address))) {
    throw new HistoryFetchError(
      "its host resolves to a loopback, link-local or private address (see history.allowPrivateNetworks)",
    );
  }
  return addresses;
}

/** A lookup for the socket that answers with the addresses already checked, never asking DNS again. */
function pinnedLookup(addresses: { address: string; family: number }[]): LookupFunction {
  return (_hostname, options, callback) => {
    const wanted =
      options.family === 4 || options.family === 6
        ? addresses.filter((entry) => entry.family === options.family)
        : addresses;
    const usable = wanted.length > 0 ? wanted : addresses;
    if (options.all) (callback as (error: null, all: { address: string; family: number }[]) => void)(null, usable);
    else callback(null, usable[0]!.address, usable[0]!.family);
  };
}

/** Reads the body up to `maxBytes`; past that the connection is cut. */
function readCapped(response: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        response.destroy();
        reject(new HistoryFetchError(`its body is larger than ${maxBytes} bytes (history.maxBytes)`));
        return;
      }
      chunks.push(chunk);
    });
    response.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    response.once("error", reject);
    response.once("close", () => {
      if (!response.complete) reject(new HistoryFetchError("the connection broke while reading its body"));
    });
  });
}

async function get(
  url: URL,
  addresses: { address: string; family: number }[],
  signal: AbortSignal,
  maxBytes: number,
): Promise<string> {
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const outgoing = send(
      url,
      { method: "GET", headers: { accept: "application/json" }, lookup: pinnedLookup(addresses), signal, agent: false },
      resolve,
    );
    outgoing.once("error", reject);
    outgoing.end();
  });
  if (response.statusCode !== undefined && response.statusCode >= 300 && response.statusCode < 400) {
    response.destroy();
    throw new HistoryFetchError(`it answered a redirect (${response.statusCode}), and redirects are not followed`);
  }
  if (response.statusCode !== 200) {
    response.destroy();
    throw new HistoryFetchError(`it answered HTTP ${response.statusCode}`);
  }
  const declared = Number(response.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.destroy();
    throw new HistoryFetchError(`its body is larger than ${maxBytes} bytes (history.maxBytes)`);
  }
  return readCapped(response, maxBytes);
}

/** Resolves or rejects like `promise`, or rejects as soon as `signal` aborts (a DNS lookup cannot be cancelled). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Builds the fetcher from the `history` option of `createApp()`; a wrong option throws here,
 * when the app is built. `who` names the caller in that error.
 * @example
 * const fetchItem = createHistoryFetcher({ allowedOrigins: ["https://peer.example.com"] });
 * const message = await fetchItem("https://peer.example.com/resources/5f0c…");
 */
export function createHistoryFetcher(options: HistoryOptions = {}, who = "createApp()"): HistoryFetcher {
  const {
    allowedOrigins = HISTORY_DEFAULTS.allowedOrigins,
    allowPrivateNetworks = HISTORY_DEFAULTS.allowPrivateNetworks,
    timeoutMs = HISTORY_DEFAULTS.timeoutMs,
    maxBytes = HISTORY_DEFAULTS.maxBytes,
  } = options;
  if (!Array.isArray(allowedOrigins))
    throw new TypeError(`[acp] ${who}: history.allowedOrigins must be a list of origins`);
  for (const origin of allowedOrigins) {
    if (!isOrigin(origin))
      throw new TypeError(
        `[acp] ${who}: history.allowedOrigins: ${JSON.stringify(origin)} is not an origin like https://acp.example.com`,
      );
  }
  positiveInteger(timeoutMs, "timeoutMs", who);
  positiveInteger(maxBytes, "maxBytes", who);
  const allowed = new Set(allowedOrigins);

  return async function fetchHistoryItem(raw: string): Promise<Message> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new HistoryFetchError("it is not a URL");
    }
    if (!allowed.has(url.origin)) throw new HistoryFetchError("its origin is not in history.allowedOrigins");
    const signal = AbortSignal.timeout(timeoutMs);
    let text: string;
    try {
      text = await untilAborted(
        resolveHost(url.hostname, allowPrivateNetworks).then((addresses) => get(url, addresses, signal, maxBytes)),
        signal,
      );
    } catch (error) {
      if (signal.aborted) throw new HistoryFetchError(`it did not answer within ${timeoutMs} ms (history.timeoutMs)`);
      if (error instanceof HistoryFetchError) throw error;
      throw new HistoryFetchError(`the request failed (${(error as NodeJS.ErrnoException).code ?? "network error"})`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HistoryFetchError("its body is not JSON");
    }
    const message = v.safeParse(MessageSchema, body);
    if (!message.success) throw new HistoryFetchError(`its body is not an ACP message (${message.issues[0].message})`);
    return message.output;
  };
}
