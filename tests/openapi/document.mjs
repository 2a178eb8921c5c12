// What lint.mjs and check.mjs share: reading the document, its operations,
// JSON pointers and a JSON Schema 2020-12 validator over its schemas.

import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

export const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

export function readDocument(file) {
  return JSON.parse(readFileSync(file, "utf8"));
}

/** Every operation: {path, method, operation}. */
export function operations(doc) {
  const out = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      if (item[method]) out.push({ path, method, operation: item[method] });
    }
  }
  return out;
}

/** The value at a local `#/…` pointer, or undefined. */
export function resolvePointer(doc, ref) {
  if (!ref.startsWith("#")) return undefined;
  const parts = ref.slice(1).split("/").slice(1).map((p) => decodeURIComponent(p).replace(/~1/g, "/").replace(/~0/g, "~"));
  let node = doc;
  for (const part of parts) {
    if (node === null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

export function pointer(...parts) {
  return "#/" + parts.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
}

/** Follows `$ref`s of OpenAPI objects (responses, parameters) to the object. */
export function deref(doc, node) {
  const seen = new Set();
  while (node && typeof node === "object" && typeof node.$ref === "string") {
    if (seen.has(node.$ref)) throw new Error(`$ref cycle at ${node.$ref}`);
    seen.add(node.$ref);
    node = resolvePointer(doc, node.$ref);
  }
  return node;
}

const DOC_ID = "urn:clickledger:openapi";

/**
 * An Ajv (JSON Schema 2020-12, formats) holding the whole document, so a
 * schema anywhere in it compiles with its `#/components/…` references.
 * `schemaAt(ptr)` is the compiled validator of the schema at `ptr`.
 */
export function schemaValidator(doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats(ajv);
  ajv.addSchema({ ...doc, $id: DOC_ID });
  const cache = new Map();
  return {
    schemaAt(ptr) {
      if (!cache.has(ptr)) {
        const validate = ajv.getSchema(DOC_ID + ptr);
        if (!validate) throw new Error(`no schema at ${ptr}`);
        cache.set(ptr, validate);
      }
      return cache.get(ptr);
    },
    errorsText: (errors) => ajv.errorsText(errors, { separator: "; ", dataVar: "body" }),
  };
}
