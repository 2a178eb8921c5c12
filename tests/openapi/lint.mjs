// node tests/openapi/lint.mjs <openapi.json>
//
// Exit 1 unless the document validates against the official OpenAPI 3.1
// schema (@seriousme/openapi-schema-validator), every `$ref` in it resolves,
// every operation has an operationId and no two share one, and every schema
// compiles as JSON Schema 2020-12.

import { Validator } from "@seriousme/openapi-schema-validator";
import { operations, pointer, readDocument, resolvePointer, schemaValidator } from "./document.mjs";

export async function lint(doc) {
  const problems = [];
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  if (!result.valid) {
    problems.push(`not a valid OpenAPI document: ${JSON.stringify(result.errors, null, 2)}`);
  } else if (validator.version !== "3.1") {
    problems.push(`OpenAPI ${validator.version}, not 3.1`);
  }
  walkRefs(doc, "#", (ref, at) => {
    if (!ref.startsWith("#/")) problems.push(`${at}: $ref ${ref} is not local`);
    else if (resolvePointer(doc, ref) === undefined) problems.push(`${at}: $ref ${ref} does not resolve`);
  });
  const seen = new Map();
  for (const { path, method, operation } of operations(doc)) {
    const where = `${method.toUpperCase()} ${path}`;
    const id = operation.operationId;
    if (typeof id !== "string" || id === "") problems.push(`${where}: no operationId`);
    else if (seen.has(id)) problems.push(`${where}: operationId ${id} is also ${seen.get(id)}'s`);
    else seen.set(id, where);
  }
  if (problems.length === 0) problems.push(...compileSchemas(doc));
  return problems;
}

function walkRefs(node, at, visit) {
  if (Array.isArray(node)) {
    node.forEach((item, i) => walkRefs(item, `${at}/${i}`, visit));
  } else if (node && typeof node === "object") {
    if (typeof node.$ref === "string") visit(node.$ref, at);
    for (const [key, value] of Object.entries(node)) walkRefs(value, `${at}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`, visit);
  }
}

/** Every component schema and every media type's schema must compile. */
function compileSchemas(doc) {
  const problems = [];
  const ajv = schemaValidator(doc);
  const ptrs = Object.keys(doc.components?.schemas ?? {}).map((name) => pointer("components", "schemas", name));
  walkMediaTypes(doc, (ptr) => ptrs.push(ptr));
  for (const ptr of ptrs) {
    try {
      ajv.schemaAt(ptr);
    } catch (e) {
      problems.push(`${ptr}: the schema does not compile: ${e.message}`);
    }
  }
  return problems;
}

function walkMediaTypes(doc, visit) {
  const visitContent = (content, ...at) => {
    for (const [type, media] of Object.entries(content ?? {})) {
      if (media.schema) visit(pointer(...at, "content", type, "schema"));
    }
  };
  for (const [name, response] of Object.entries(doc.components?.responses ?? {})) {
    visitContent(response.content, "components", "responses", name);
  }
  for (const { path, method, operation } of operations(doc)) {
    if (operation.requestBody?.content) visitContent(operation.requestBody.content, "paths", path, method, "requestBody");
    for (const [status, response] of Object.entries(operation.responses ?? {})) {
      if (response.content) visitContent(response.content, "paths", path, method, "responses", status);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node tests/openapi/lint.mjs <openapi.json>");
    process.exit(2);
  }
  const doc = readDocument(file);
  const problems = await lint(doc);
  if (problems.length) {
    for (const p of problems) console.error(`lint: ${p}`);
    process.exit(1);
  }
  console.log(`lint: ${file} is valid OpenAPI ${doc.openapi}: ${operations(doc).length} operations, every $ref resolves`);
}
