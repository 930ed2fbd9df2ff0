/**
 * `GET /openapi.json`: a valid OpenAPI 3.1 document (checked against the official schemas),
 * generated from the models, that describes every route the app serves and covers the ACP 0.2
 * document: its every path and method, and the same required fields in the bodies both describe.
 */
import { MemoryStore } from "@acp/store-memory";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import formatsPlugin from "ajv-formats";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiDocument } from "../src/http/openapi.ts";
import { agent, createApp } from "../src/index.ts";
import { RunCreateRequestSchema, RunResumeRequestSchema } from "../src/models.ts";
import { jsonInit, parseFrames, startApp, stopApps, type TestApp, user } from "./support/app.ts";
import { loadOpenApiSpec } from "./support/openapi.ts";

type Json = Record<string, unknown>;

// ajv-formats is CommonJS: under NodeNext its default import is the module, at run time the plugin.
const addFormats = formatsPlugin as unknown as typeof formatsPlugin.default;

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Follows local `$ref`s (`#/a/b`) in `document` until the node is not one. */
function resolve(document: Json, node: unknown): Json {
  let current = node;
  for (let hops = 0; isObject(current) && typeof current.$ref === "string"; hops++) {
    if (hops > 20) throw new Error(`$ref loop at ${current.$ref}`);
    const ref: string = current.$ref;
    if (!ref.startsWith("#/")) throw new Error(`not a local $ref: ${ref}`);
    let target: unknown = document;
    for (const key of ref.slice(2).split("/")) target = isObject(target) ? target[key] : undefined;
    if (target === undefined) throw new Error(`unresolved $ref ${ref}`);
    current = target;
  }
  if (!isObject(current)) throw new Error(`not an object: ${JSON.stringify(current)}`);
  return current;
}

/** A schema without its "or null": `anyOf: [X, {type: null}]` is X (and OpenAPI 3.0's `nullable` is ignored). */
function nonNull(document: Json, schema: unknown): Json {
  const resolved = resolve(document, schema);
  const branches = (resolved.anyOf ?? resolved.oneOf) as unknown[] | undefined;
  if (Array.isArray(branches)) {
    const rest = branches.filter((branch) => !(isObject(branch) && branch.type === "null"));
    if (rest.length === 1) return nonNull(document, rest[0]);
  }
  return resolved;
}

/** The name of the component a `$ref` points to, or undefined. */
const refName = (node: unknown): string | undefined =>
  isObject(node) && typeof node.$ref === "string" ? node.$ref.split("/").pop() : undefined;

/** The component a schema is, looking through an "or null" around a `$ref`. */
function componentOf(node: unknown): string | undefined {
  if (!isObject(node)) return undefined;
  const branches = (node.anyOf ?? node.oneOf) as unknown[] | undefined;
  if (Array.isArray(branches)) {
    const rest = branches.filter((branch) => !(isObject(branch) && branch.type === "null"));
    return rest.length === 1 ? componentOf(rest[0]) : undefined;
  }
  return refName(node);
}

/**
 * Fields whose requiredness differs from the ACP document on purpose, with why
 * (`OurComponent.field`). In a request a field may be optional in ours only (we are lenient); in an
 * answer a field may be required in ours only (we always send it). An answer that may lack a field
 * the ACP document requires is never accepted, listed or not.
 */
const KNOWN_DIFFERENCES: Record<string, string> = {
  // Requests are lenient: the official clients send these as null or leave them out.
  "RunResumeRequest.run_id": "the run id is in the path; clients send null",
  "RunResumeRequest.mode": "defaults to sync",
  "Session.history": "defaults to [] in requests (the answers' SessionResponse requires it)",
  // A message a client sends may leave out what the server fills in; `Message` (answers) requires it.
  "MessageInput.role": 'defaults to "user"',
  "MessagePartInput.content_type": 'defaults to "text/plain"',
  "CitationMetadataInput.kind": "defaults to citation",
  "TrajectoryMetadataInput.kind": "defaults to trajectory",
  // Answers: always sent, once filled in.
  "MessagePart.content_encoding": "always sent, plain or base64",
  "CitationMetadata.kind": "always sent",
  "TrajectoryMetadata.kind": "always sent",
  // The ACP document leaves these open objects; ACP 0.2 defines one kind, `{ type: "message", message }`.
  "AwaitRequest.type": "the message kind",
  "AwaitRequest.message": "the message kind",
  "AwaitResume.type": "the message kind",
  "AwaitResume.message": "the message kind",
};

/** Which side of the exchange a body is: what may differ from the ACP document depends on it. */
type Side = "request" | "answer";

/**
 * Walks a schema of the ACP document and ours side by side and lists where the required fields of
 * an object differ (as `where: spec [...] ours [...]`), but for the {@link KNOWN_DIFFERENCES}
 * allowed on that side.
 */
function requiredDifferences(
  spec: Json,
  ours: Json,
  specNode: unknown,
  ourNode: unknown,
  where: string,
  side: Side,
): string[] {
  const differences: string[] = [];
  const seen = new Set<string>();
  const walk = (a: unknown, b: unknown, at: string, name: string | undefined): void => {
    const key = `${JSON.stringify(a)}|${JSON.stringify(b)}`;
    if (seen.has(key)) return;
    seen.add(key);
    const specSchema = nonNull(spec, a);
    const ourSchema = nonNull(ours, b);
    const component = componentOf(b) ?? name;
    // A union (Event): pair its branches by component name (ours may add `Input` to it).
    const specBranches = (specSchema.oneOf ?? specSchema.anyOf) as unknown[] | undefined;
    if (Array.isArray(specBranches)) {
      const ourBranches = ((ourSchema.oneOf ?? ourSchema.anyOf) as unknown[] | undefined) ?? [];
      for (const branch of specBranches) {
        // Branches that are not components (a string, an enum) hold no required fields.
        const branchName = refName(branch);
        if (branchName === undefined) continue;
        const match = ourBranches.find((candidate) => [branchName, `${branchName}Input`].includes(refName(candidate)!));
        if (match === undefined) differences.push(`${at}: no branch ${branchName}`);
        else walk(branch, match, `${at}|${branchName}`, refName(match));
      }
      return;
    }
    const specRequired = new Set((specSchema.required as string[] | undefined) ?? []);
    const ourRequired = new Set((ourSchema.required as string[] | undefined) ?? []);
    for (const field of new Set([...specRequired, ...ourRequired])) {
      if (specRequired.has(field) === ourRequired.has(field)) continue;
      const inSpecOnly = specRequired.has(field);
      // An answer always has what the ACP document says it has.
      const allowed = !(side === "answer" && inSpecOnly);
      if (allowed && component !== undefined && `${component}.${field}` in KNOWN_DIFFERENCES) continue;
      differences.push(`${at}.${field}: required in ${inSpecOnly ? "the ACP document" : "ours"} only (${side})`);
    }
    const specProperties = (specSchema.properties as Json | undefined) ?? {};
    const ourProperties = (ourSchema.properties as Json | undefined) ?? {};
    for (const [field, child] of Object.entries(specProperties)) {
      if (field in ourProperties) walk(child, ourProperties[field], `${at}.${field}`, undefined);
      else differences.push(`${at}.${field}: not in ours`);
    }
    if (specSchema.items !== undefined && ourSchema.items !== undefined)
      walk(specSchema.items, ourSchema.items, `${at}[]`, undefined);
  };
  walk(specNode, ourNode, where, undefined);
  return differences;
}

let server: TestApp;
let document: Json;
const spec = loadOpenApiSpec();

beforeAll(async () => {
  server = await startApp([agent({ name: "echo", description: "Echo" }, async function* () {})], {
    openapi: true,
    metrics: true,
  });
  document = await server.getJson<Json>("/openapi.json");
});
afterAll(() => stopApps());

describe("GET /openapi.json", () => {
  it("is served only when the app is built with openapi: true", async () => {
    const plain = await startApp([]);
    expect((await plain.request("/openapi.json")).status).toBe(404);
    const response = await server.request("/openapi.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("application/json");
  });

  it("is a structurally valid OpenAPI 3.1 document whose $refs all resolve", () => {
    expect(document.openapi).toMatch(/^3\.1\.\d+$/);
    const info = document.info as Json;
    expect(typeof info.title).toBe("string");
    expect(typeof info.version).toBe("string");
    expect(isObject(document.paths)).toBe(true);
    for (const [path, item] of Object.entries(document.paths as Json)) {
      expect(path).toMatch(/^\//);
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
      for (const [method, operation] of Object.entries(item as Json)) {
        expect(METHODS, `${path} ${method}`).toContain(method);
        const op = operation as Json;
        const parameters = ((op.parameters as unknown[] | undefined) ?? []).map((p) => resolve(document, p));
        for (const name of templated) {
          expect(parameters, `${method} ${path} declares {${name}}`).toContainEqual(
            expect.objectContaining({ name, in: "path", required: true }),
          );
        }
        expect(Object.keys(op.responses as Json).length).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(op.responses as Json)) {
          expect(status).toMatch(/^([1-5](\d\d|XX)|default)$/);
          expect(typeof resolve(document, response).description).toBe("string");
        }
      }
    }
    // Every $ref anywhere points to something.
    const visit = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(visit);
      else if (isObject(node)) {
        if (typeof node.$ref === "string") resolve(document, node);
        for (const child of Object.values(node)) visit(child);
      }
    };
    visit(document);
  });

  it("has component schemas that are valid JSON Schema 2020-12", () => {
    const ajv = new Ajv2020({ strict: false });
    addFormats(ajv);
    // Compiling the whole set checks every schema and every reference between them.
    ajv.addSchema({ $id: "https://acp.invalid/generated", components: document.components }, "generated");
    for (const name of Object.keys((document.components as Json).schemas as Json))
      expect(ajv.getSchema(`https://acp.invalid/generated#/components/schemas/${name}`), name).toBeTypeOf("function");
  });

  it("covers every route the server serves, /metrics when it is on", () => {
    expect(Object.keys(document.paths as Json).sort()).toEqual(
      [
        "/agents",
        "/agents/{name}",
        "/metrics",
        "/openapi.json",
        "/ping",
        "/resources/{resource_id}",
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/cancel",
        "/runs/{run_id}/events",
        "/session/{session_id}",
        "/sessions/{session_id}",
      ].sort(),
    );
    const events = (document.paths as Json)["/runs/{run_id}/events"] as { get: { responses: Json } };
    expect(Object.keys((events.get.responses["200"] as { content: Json }).content)).toEqual([
      "application/json",
      "text/event-stream",
    ]);
  });

  it("has every path and method of the ACP document", () => {
    const ours = document.paths as Json;
    for (const [path, item] of Object.entries(spec.paths as Json)) {
      for (const method of Object.keys(item as Json).filter((key) => METHODS.includes(key)))
        expect(ours[path] as Json | undefined, `${method.toUpperCase()} ${path}`).toHaveProperty(method);
    }
  });

  it("requires the same fields as the ACP document in every request and response body", () => {
    const differences: string[] = [];
    for (const [path, item] of Object.entries(spec.paths as Json)) {
      for (const [method, operation] of Object.entries(item as Json)) {
        if (!METHODS.includes(method)) continue;
        const specOp = operation as Json;
        const ourOp = ((document.paths as Json)[path] as Json)[method] as Json;
        const where = `${method.toUpperCase()} ${path}`;
        const specBody = specOp.requestBody as Json | undefined;
        if (specBody !== undefined) {
          const ourBody = resolve(document, ourOp.requestBody);
          const specSchema = (resolve(spec, specBody).content as Json)["application/json"] as Json;
          const ourSchema = (ourBody.content as Json)["application/json"] as Json;
          differences.push(
            ...requiredDifferences(spec, document, specSchema.schema, ourSchema.schema, `${where} body`, "request"),
          );
        }
        for (const [status, response] of Object.entries(specOp.responses as Json)) {
          const ourResponse = (ourOp.responses as Json)[status];
          if (ourResponse === undefined) {
            differences.push(`${where} ${status}: not in ours`);
            continue;
          }
          const ourContent = (resolve(document, ourResponse).content as Json | undefined) ?? {};
          for (const [type, media] of Object.entries((resolve(spec, response).content as Json | undefined) ?? {})) {
            const ourMedia = ourContent[type] as Json | undefined;
            if (ourMedia === undefined) differences.push(`${where} ${status} ${type}: not in ours`);
            else
              differences.push(
                ...requiredDifferences(
                  spec,
                  document,
                  (media as Json).schema,
                  ourMedia.schema,
                  `${where} ${status}`,
                  "answer",
                ),
              );
          }
        }
      }
    }
    expect(differences).toEqual([]);
  });
});

/** The option sets whose documents differ: each optional route on and off. */
const VARIANTS = [
  {},
  { metrics: true },
  { auth: true },
  { docs: true },
  { metrics: true, auth: true, docs: true },
] as const;

/** `/runs/:run_id` as the document spells it: `/runs/{run_id}`. */
const openApiPath = (honoPath: string): string => honoPath.replace(/:([A-Za-z_]+)/g, "{$1}");

describe("the OpenAPI document", () => {
  it.each(VARIANTS)("passes the OpenAPI 3.1 schema validator with %o", async (options) => {
    const validator = new Validator();
    const result = await validator.validate(openApiDocument(options));
    expect(validator.version).toBe("3.1");
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("is what the validator refuses when it is wrong", async () => {
    // The validator does look: a response without a description fails.
    const broken = openApiDocument({});
    (broken.paths as Json)["/ping"] = { get: { responses: { "200": {} } } };
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it.each(VARIANTS)("describes exactly the routes of an app built with %o", (variant) => {
    const app = createApp([], {
      store: new MemoryStore(),
      openapi: true,
      metrics: "metrics" in variant,
      docs: "docs" in variant,
      ...("auth" in variant ? { auth: { apiKeys: ["k-1"] } } : {}),
    });
    // Middleware (method ALL) answer no route of their own.
    const served = app.routes
      .filter((route) => route.method !== "ALL")
      .map((route) => `${route.method} ${openApiPath(route.path)}`);
    const built = openApiDocument({ metrics: "metrics" in variant, auth: "auth" in variant, docs: "docs" in variant });
    const described = Object.entries(built.paths as Json).flatMap(([path, item]) =>
      Object.keys(item as Json).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect([...new Set(served)].sort()).toEqual(described.sort());
    void app.shutdown({ deadlineMs: 0 });
  });

  it("describes the SSE answers and an ACP error body for every failure", () => {
    const built = openApiDocument({ metrics: true, auth: true, docs: true });
    const paths = built.paths as Record<string, Record<string, Json>>;
    for (const [method, path] of [
      ["post", "/runs"],
      ["post", "/runs/{run_id}"],
      ["get", "/runs/{run_id}/events"],
    ] as const) {
      const content = resolve(built, (paths[path]![method]!.responses as Json)["200"]).content as Json;
      const sse = content["text/event-stream"] as Json | undefined;
      expect(sse, `${method} ${path}`).toBeDefined();
      expect(refName(sse!.schema)).toBe("Event");
    }
    for (const [path, item] of Object.entries(paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const responses = operation.responses as Json;
        expect(responses.default, `${method} ${path} default`).toBeDefined();
        for (const [status, response] of Object.entries(responses)) {
          if (!/^[45]|default/.test(status)) continue;
          const body = (resolve(built, response).content as Json | undefined)?.["application/json"] as Json;
          expect(refName(body?.schema), `${method} ${path} ${status}`).toBe("Error");
        }
      }
    }
  });

  it("points at the server that serves it, under any path prefix, with examples the server accepts", () => {
    const built = openApiDocument({});
    // Relative to the document's URL: /acp/openapi.json makes /acp/runs of POST /runs.
    expect(built.servers).toEqual([expect.objectContaining({ url: "." })]);
    const paths = built.paths as Record<string, Record<string, Json>>;
    for (const [path, schema] of [
      ["/runs", RunCreateRequestSchema],
      ["/runs/{run_id}", RunResumeRequestSchema],
    ] as const) {
      const media = ((paths[path]!.post!.requestBody as Json).content as Json)["application/json"] as Json;
      expect(v.safeParse(schema, media.example).success, `POST ${path} example`).toBe(true);
    }
  });

  it("keeps the fields the server fills in optional in requests and required in answers", () => {
    const built = openApiDocument({});
    const schemas = (built.components as Json).schemas as Record<string, Json>;
    const required = (name: string): string[] => (schemas[name]!.required as string[] | undefined) ?? [];
    // What a client sends: role and content_type may be left out.
    expect(required("MessageInput")).toEqual(["parts"]);
    expect(required("MessagePartInput")).toEqual([]);
    // What the server sends: they are always there, as the ACP document requires.
    expect(required("Message").sort()).toEqual(["parts", "role"]);
    expect(required("MessagePart").sort()).toEqual(["content_encoding", "content_type"]);
    const specSchemas = (spec.components as Json).schemas as Record<string, Json>;
    for (const name of ["Message", "MessagePart", "Run", "Error"])
      expect(required(name), name).toEqual(expect.arrayContaining(specSchemas[name]!.required as string[]));
    // Requests point at the input twins, answers at the output schemas.
    const input = (schemas.RunCreateRequest!.properties as Json).input as Json;
    expect(refName(input.items)).toBe("MessageInput");
    expect(refName(((schemas.AwaitResume!.properties as Json).message as Json) ?? {})).toBe("MessageInput");
    expect(refName(((schemas.Run!.properties as Json).output as Json).items)).toBe("Message");
    expect(refName((schemas.AwaitRequest!.properties as Json).message)).toBe("Message");
    // A part the server sends has no nulls: it drops them.
    const content = (schemas.MessagePart!.properties as Json).content as Json;
    expect(content).toEqual({ type: "string" });
  });
});

describe("what the server sends", () => {
  it("matches the schemas of its own document: runs, events, streams, sessions, errors", async () => {
    const chatty = agent({ name: "chatty", description: "Talks" }, async function* () {
      yield "Hello ";
      yield {
        parts: [
          {
            content: "{}",
            content_type: "application/json",
            metadata: { kind: "citation", url: "https://example.com" },
          },
        ],
      };
    });
    const served = await startApp([chatty], { openapi: true });
    const built = await served.getJson<Json>("/openapi.json");
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema({ $id: "https://acp.invalid/served", components: built.components });
    const check = (component: string, value: unknown): void => {
      const validate = ajv.getSchema(`https://acp.invalid/served#/components/schemas/${component}`)!;
      expect(validate(value), `${component}: ${JSON.stringify(validate.errors)} in ${JSON.stringify(value)}`).toBe(
        true,
      );
    };
    const sessionId = crypto.randomUUID();
    const run = await (
      await served.post("/runs", { agent_name: "chatty", session_id: sessionId, input: [user("hi")] })
    ).json();
    check("Run", run);
    const stream = await served.request(
      "/runs",
      jsonInit({ agent_name: "chatty", session_id: sessionId, mode: "stream", input: [user("again")] }),
    );
    const frames = parseFrames(await stream.text());
    expect(frames.length).toBeGreaterThan(4);
    for (const frame of frames) check("Event", frame.data);
    check("RunEventsListResponse", await served.getJson(`/runs/${(run as { run_id: string }).run_id}/events`));
    check("AgentsListResponse", await served.getJson("/agents"));
    const session = await served.getJson<{ history: string[] }>(`/sessions/${sessionId}`);
    check("SessionResponse", session);
    for (const url of session.history) check("Message", await served.getJson(new URL(url).pathname));
    for (const wrong of [served.request("/agents/nobody"), served.post("/runs", { agent_name: "chatty" })])
      check("Error", await (await wrong).json());
  });
});
