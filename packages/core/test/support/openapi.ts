/**
 * Test helper: validates values against the `components.schemas` of the ACP 0.2 OpenAPI document,
 * so tests can check that what the server sends is what the protocol describes.
 *
 * The document is vendored in the repository, in `spec/` at its root (see `spec/README.md`).
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import formatsPlugin from "ajv-formats";
import { parse as parseYaml } from "yaml";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

/** Where the ACP OpenAPI document is read from. */
export const openApiSpecPath = path.join(repoRoot, "spec/acp-openapi-0.2.0.yaml");

/** `$id` given to the translated schemas; only used to resolve `$ref`s, never fetched. */
const schemaBaseId = "https://acp.invalid/openapi-0.2.0";

// The OpenAPI document references `#/components/schemas/X`; the translated document keeps them under `$defs`.
const componentRefPrefix = "#/components/schemas/";

// ajv-formats is CommonJS whose types declare `export default`; under NodeNext that default is the
// module object, while at run time it is the plugin function itself.
const addFormats = formatsPlugin as unknown as typeof formatsPlugin.default;

/** Compiled validators per component name, filled on first use so importing the helper costs nothing. */
const validators = new Map<string, ValidateFunction>();
let compiled: { ajv: Ajv2020; componentNames: string[] } | undefined;

/**
 * Throws unless `value` is valid against the OpenAPI component schema `componentName`
 * (for example `"Run"`, `"Event"`, `"Error"`, `"MessagePart"`).
 * The error message lists every ajv error with the path of the offending value.
 * @example
 * assertMatchesSchema("Run", await response.json());
 */
export function assertMatchesSchema(componentName: string, value: unknown): void {
  const validate = getValidator(componentName);
  if (validate(value)) return;
  throw new Error(
    `value does not match OpenAPI schema "${componentName}":\n${formatErrors(validate.errors ?? [])}\nvalue: ${JSON.stringify(value, null, 2)}`,
  );
}

function getValidator(componentName: string): ValidateFunction {
  const cached = validators.get(componentName);
  if (cached) return cached;
  compiled ??= compileComponentSchemas();
  if (!compiled.componentNames.includes(componentName)) {
    throw new Error(`OpenAPI document has no schema "${componentName}" (known: ${compiled.componentNames.join(", ")})`);
  }
  const validate = compiled.ajv.getSchema(`${schemaBaseId}#/$defs/${componentName}`);
  if (!validate) throw new Error(`ajv could not compile OpenAPI schema "${componentName}"`);
  validators.set(componentName, validate);
  return validate;
}

function compileComponentSchemas(): { ajv: Ajv2020; componentNames: string[] } {
  const schemas = loadComponentSchemas();
  const ajv = new Ajv2020({ allErrors: true, allowUnionTypes: true, strictTypes: false });
  addFormats(ajv);
  // OpenAPI annotations and numeric formats that JSON Schema does not define.
  ajv.addVocabulary(["example", "discriminator", "externalDocs", "xml"]);
  ajv.addFormat("float", { type: "number", validate: () => true });
  ajv.addFormat("double", { type: "number", validate: () => true });
  ajv.addSchema({ $id: schemaBaseId, $defs: schemas });
  return { ajv, componentNames: Object.keys(schemas) };
}

/** The ACP OpenAPI document as it is, parsed (its `$ref`s and OpenAPI 3.0 leftovers untouched). */
export function loadOpenApiSpec(): Record<string, unknown> {
  if (!existsSync(openApiSpecPath)) {
    throw new Error(`ACP OpenAPI document not found at ${openApiSpecPath}: it is part of the repository (spec/)`);
  }
  return parseYaml(readFileSync(openApiSpecPath, "utf8")) as Record<string, unknown>;
}

function loadComponentSchemas(): Record<string, unknown> {
  const document = loadOpenApiSpec() as { components?: { schemas?: unknown } };
  const schemas = document.components?.schemas;
  if (!isPlainObject(schemas)) throw new Error(`${openApiSpecPath} has no components.schemas`);
  return translateSchema(schemas) as Record<string, unknown>;
}

/**
 * Rewrites OpenAPI 3.0 leftovers into JSON Schema 2020-12: `nullable: true` becomes a `"null"` type
 * (or an `anyOf` with `{ type: "null" }` when there is no `type`, as next to `$ref` or `oneOf`),
 * and component `$ref`s point into `$defs`.
 */
function translateSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(translateSchema);
  if (!isPlainObject(node)) return node;
  const { nullable, ...rest } = node;
  const translated: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(rest)) {
    translated[key] =
      key === "$ref" && typeof child === "string" && child.startsWith(componentRefPrefix)
        ? `#/$defs/${child.slice(componentRefPrefix.length)}`
        : translateSchema(child);
  }
  return nullable === true ? allowNull(translated) : translated;
}

function allowNull(schema: Record<string, unknown>): Record<string, unknown> {
  const { type } = schema;
  if (typeof type === "string" || Array.isArray(type)) {
    const types = Array.isArray(type) ? type : [type];
    const nullable: Record<string, unknown> = { ...schema, type: types.includes("null") ? types : [...types, "null"] };
    if (Array.isArray(schema.enum) && !schema.enum.includes(null)) nullable.enum = [...schema.enum, null];
    return nullable;
  }
  // No `type` to widen (a `$ref` or a `oneOf`): accept null beside the whole schema.
  const { description, ...constraints } = schema;
  return { ...(description === undefined ? {} : { description }), anyOf: [constraints, { type: "null" }] };
}

function formatErrors(errors: ErrorObject[]): string {
  return errors
    .map((error) => {
      const where = error.instancePath === "" ? "(root)" : error.instancePath;
      return `  - ${where} ${error.message ?? "is invalid"} ${JSON.stringify(error.params)} [${error.schemaPath}]`;
    })
    .join("\n");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
