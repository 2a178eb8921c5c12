// node tests/openapi/check.mjs <openapi.json> <dir>
//
// Checks every response the integration tests recorded (the `.jsonl` files
// `tests/common/record.rs` writes under CLICKLEDGER_API_RECORD) against the
// document: the request's path and method name a documented operation
// (literal segments win over `{param}` ones), the status is one it documents,
// the content type is one that response documents, and the body validates
// against that media type's schema (JSON bodies parsed; text bodies as
// strings). A path no route matches is skipped when the answer was 404 or 405
// (bad-input tests send such paths on purpose). Each distinct failure is
// printed once; exit 1 if there was any.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { operations, pointer, readDocument, resolvePointer, schemaValidator } from "./document.mjs";

const EXCERPT_CHARS = 400;

/** Path templates, matched segment by segment; literal segments win. */
export function pathMatcher(doc) {
  const templates = Object.keys(doc.paths ?? {}).map((template) => {
    const segments = split(template).map((s) => (/^\{[^}]+\}$/.test(s) ? null : s));
    return { template, segments, rank: segments.map((s) => (s === null ? "1" : "0")).join("") };
  });
  return (path) => {
    const actual = split(path);
    const matches = templates.filter(
      (t) => t.segments.length === actual.length && t.segments.every((s, i) => s === null || s === actual[i]),
    );
    matches.sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
    return matches[0]?.template;
  };
}

// As the router splits: trailing slashes go, every other segment counts.
function split(path) {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? [] : trimmed.split("/").slice(1);
}

const essence = (contentType) => (contentType ?? "").split(";")[0].trim().toLowerCase();
const isJson = (type) => type === "application/json" || type.endsWith("+json");

/** The documented media type a response's content type falls under. */
function mediaTypeFor(content, type) {
  const keys = Object.keys(content);
  return (
    keys.find((k) => essence(k) === type) ??
    keys.find((k) => k.endsWith("/*") && type.startsWith(k.slice(0, -1))) ??
    keys.find((k) => k === "*/*")
  );
}

/** The documented response for `status`: exact, then `4XX`-style, then default. */
function responseFor(responses, status) {
  const s = String(status);
  const key = [s, `${s[0]}XX`, "default"].find((k) => responses?.[k] !== undefined);
  return key;
}

/** A response object, and its pointer once its `$ref`s are followed. */
function responsePointer(doc, ptr) {
  let at = ptr;
  let node = resolvePointer(doc, at);
  while (node && typeof node.$ref === "string") {
    at = node.$ref;
    node = resolvePointer(doc, at);
  }
  return { response: node, at };
}

/**
 * Checks `records` against `doc`. Returns the distinct failures (each with
 * how often it happened and the first test that met it) and a summary.
 */
export function check(doc, records) {
  const match = pathMatcher(doc);
  const ajv = schemaValidator(doc);
  const failures = new Map();
  const seen = new Set();
  let checked = 0;
  let skipped = 0;
  const fail = (operation, status, problem, record) => {
    const key = `${operation}\u0000${status}\u0000${problem}`;
    const known = failures.get(key);
    if (known) {
      known.count += 1;
      return;
    }
    const body = typeof record.body === "string" ? record.body : "";
    failures.set(key, {
      operation,
      status,
      problem,
      test: record.test ?? "?",
      request: `${record.method} ${record.path}${record.query ? `?${record.query}` : ""}`,
      excerpt: body.length > EXCERPT_CHARS ? `${body.slice(0, EXCERPT_CHARS)}…` : body,
      count: 1,
    });
  };

  for (const record of records) {
    const method = String(record.method ?? "").toLowerCase();
    const status = record.status;
    const template = match(record.path ?? "");
    if (!template) {
      if (status === 404 || status === 405) {
        skipped += 1;
        continue;
      }
      fail(`${record.method} ${record.path}`, status, "no documented path matches this request", record);
      continue;
    }
    checked += 1;
    const operation = doc.paths[template][method];
    const name = `${method.toUpperCase()} ${template}`;
    if (!operation) {
      // A method the route does not take: the router's 405 (not an operation).
      if (status !== 405) fail(name, status, `${method.toUpperCase()} is not documented on ${template}`, record);
      continue;
    }
    seen.add(name);
    const key = responseFor(operation.responses, status);
    if (!key) {
      const documented = Object.keys(operation.responses ?? {}).join(", ");
      fail(`${name} (${operation.operationId})`, status, `status ${status} is not documented (documented: ${documented})`, record);
      continue;
    }
    const { response, at } = responsePointer(doc, pointer("paths", template, method, "responses", key));
    checkBody(doc, ajv, { name: `${name} (${operation.operationId})`, method, status, response, at, record, fail });
  }
  const documented = operations(doc).map(({ path, method }) => `${method.toUpperCase()} ${path}`);
  return {
    failures: [...failures.values()],
    summary: {
      responses: records.length,
      checked,
      skipped,
      operationsSeen: seen.size,
      operationsDocumented: documented.length,
      neverExercised: documented.filter((o) => !seen.has(o)),
    },
  };
}

function checkBody(doc, ajv, { name, method, status, response, at, record, fail }) {
  const body = typeof record.body === "string" ? record.body : "";
  const content = response?.content;
  if (!content || Object.keys(content).length === 0) {
    if (body.length > 0) fail(name, status, "a body came back, but the response documents no content", record);
    return;
  }
  const type = essence(record.contentType);
  if (!type) {
    if (body.length > 0) fail(name, status, "a body came back without a content type", record);
    return;
  }
  const media = mediaTypeFor(content, type);
  if (!media) {
    fail(name, status, `content type ${record.contentType} is not documented (documented: ${Object.keys(content).join(", ")})`, record);
    return;
  }
  // HEAD answers have no body; a cut body cannot be validated.
  if (method === "head" || record.truncated || !content[media].schema) return;
  let value = body;
  if (isJson(type)) {
    try {
      value = JSON.parse(body);
    } catch (e) {
      fail(name, status, `the body is not JSON (${e.message})`, record);
      return;
    }
  }
  const validate = ajv.schemaAt(`${at}/content/${media.replace(/~/g, "~0").replace(/\//g, "~1")}/schema`);
  if (!validate(value)) fail(name, status, ajv.errorsText(validate.errors), record);
}

/** Every record of every `.jsonl` file in `dir`. */
export function readRecords(dir) {
  const records = [];
  if (!existsSync(dir)) return { records, files: 0 };
  const files = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).sort();
  for (const file of files) {
    const lines = readFileSync(join(dir, file), "utf8").split("\n");
    lines.forEach((line, i) => {
      if (line.trim() === "") return;
      try {
        records.push(JSON.parse(line));
      } catch (e) {
        throw new Error(`${file}:${i + 1}: not JSON (${e.message})`);
      }
    });
  }
  return { records, files: files.length };
}

export function report({ failures, summary }, log = console.log) {
  for (const f of failures) {
    log(`FAIL ${f.operation} → ${f.status}: ${f.problem}`);
    log(`     test: ${f.test} (${f.count}×; first: ${f.request})`);
    if (f.excerpt) log(`     body: ${f.excerpt}`);
  }
  log(
    `check: ${summary.responses} responses, ${summary.checked} on documented paths, ${summary.skipped} skipped (no route, 404/405); ` +
      `${summary.operationsSeen} of ${summary.operationsDocumented} operations exercised; ${failures.length} distinct failures`,
  );
  if (summary.neverExercised.length) log(`check: never exercised: ${summary.neverExercised.join(", ")}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, dir] = process.argv.slice(2);
  if (!file || !dir) {
    console.error("usage: node tests/openapi/check.mjs <openapi.json> <recordings dir>");
    process.exit(2);
  }
  const { records, files } = readRecords(dir);
  if (records.length === 0) {
    console.error(`check: no recorded responses in ${dir} (${files} files): was CLICKLEDGER_API_RECORD set for the tests?`);
    process.exit(1);
  }
  const result = check(readDocument(file), records);
  report(result);
  process.exit(result.failures.length ? 1 : 0);
}
