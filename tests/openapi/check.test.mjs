// node --test tests/openapi/: the checker (and the linter) on a tiny document.

import assert from "node:assert/strict";
import { test } from "node:test";

import { check, pathMatcher } from "./check.mjs";
import { lint } from "./lint.mjs";

const doc = {
  openapi: "3.1.0",
  info: { title: "tiny", version: "1" },
  paths: {
    "/items/{id}": {
      get: {
        operationId: "getItem",
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          200: { description: "An item.", content: { "application/json": { schema: { $ref: "#/components/schemas/Item" } } } },
          404: { $ref: "#/components/responses/NotFound" },
        },
      },
    },
    "/items/special": {
      get: {
        operationId: "getSpecial",
        responses: { 200: { description: "Plain text.", content: { "text/plain": { schema: { type: "string", maxLength: 5 } } } } },
      },
    },
  },
  components: {
    schemas: {
      Item: { type: "object", required: ["id", "count"], properties: { id: { type: "string" }, count: { type: "integer", minimum: 0 } } },
      Error: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
    },
    responses: {
      NotFound: { description: "Missing.", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    },
  },
};

const record = (over) => ({
  test: "a_test",
  method: "GET",
  path: "/items/it_1",
  query: null,
  status: 200,
  contentType: "application/json",
  body: JSON.stringify({ id: "it_1", count: 2 }),
  ...over,
});

test("a documented response with a valid body passes", () => {
  const result = check(doc, [
    record(),
    record({ status: 404, body: '{"error":"not_found"}' }),
    record({ path: "/items/special/", contentType: "text/plain; charset=utf-8", body: "hello" }),
  ]);
  assert.deepEqual(result.failures, []);
  assert.equal(result.summary.checked, 3);
  assert.equal(result.summary.operationsSeen, 2);
  assert.deepEqual(result.summary.neverExercised, []);
});

test("a body that violates the schema fails, naming the operation and the test", () => {
  const { failures } = check(doc, [record({ body: JSON.stringify({ id: "it_1", count: -1 }), test: "the_bad_one" })]);
  assert.equal(failures.length, 1);
  assert.match(failures[0].operation, /GET \/items\/\{id\} \(getItem\)/);
  assert.match(failures[0].problem, /count must be >= 0/);
  assert.equal(failures[0].test, "the_bad_one");
});

test("a body that is not JSON under a JSON content type fails", () => {
  const { failures } = check(doc, [record({ body: "<html>" })]);
  assert.equal(failures.length, 1);
  assert.match(failures[0].problem, /not JSON/);
});

test("an undocumented status fails", () => {
  const { failures } = check(doc, [record({ status: 201 })]);
  assert.equal(failures.length, 1);
  assert.match(failures[0].problem, /status 201 is not documented/);
});

test("an unknown path fails with a 200 and is skipped with a 404 or 405", () => {
  const result = check(doc, [
    record({ path: "/nowhere" }),
    record({ path: "/nowhere", status: 404 }),
    record({ path: "/items/a/b", status: 405 }),
  ]);
  assert.equal(result.failures.length, 1);
  assert.match(result.failures[0].problem, /no documented path/);
  assert.equal(result.summary.skipped, 2);
});

test("an undocumented content type fails, and a text body is checked as a string", () => {
  const { failures } = check(doc, [
    record({ contentType: "text/html" }),
    record({ path: "/items/special", contentType: "text/plain", body: "too long" }),
  ]);
  assert.equal(failures.length, 2);
  assert.match(failures[0].problem, /content type text\/html is not documented/);
  assert.match(failures[1].problem, /must NOT have more than 5 characters/);
});

test("a method the path does not document passes only as a 405", () => {
  const { failures } = check(doc, [record({ method: "DELETE", status: 405, body: "" }), record({ method: "DELETE", status: 200 })]);
  assert.equal(failures.length, 1);
  assert.match(failures[0].problem, /DELETE is not documented/);
});

test("literal segments win over parameters", () => {
  const match = pathMatcher(doc);
  assert.equal(match("/items/special"), "/items/special");
  assert.equal(match("/items/other"), "/items/{id}");
  assert.equal(match("/items"), undefined);
});

test("each distinct failure is reported once, with a count", () => {
  const bad = record({ body: "{}" });
  const { failures } = check(doc, [bad, bad, bad]);
  assert.equal(failures.length, 1);
  assert.equal(failures[0].count, 3);
});

test("the linter passes the tiny document and names a dangling $ref and a duplicate operationId", async () => {
  assert.deepEqual(await lint(doc), []);
  const broken = structuredClone(doc);
  broken.paths["/items/special"].get.operationId = "getItem";
  broken.paths["/items/{id}"].get.responses[200].content["application/json"].schema.$ref = "#/components/schemas/Nope";
  const problems = await lint(broken);
  assert.ok(problems.some((p) => /Nope does not resolve/.test(p)), problems.join("\n"));
  assert.ok(problems.some((p) => /operationId getItem is also/.test(p)), problems.join("\n"));
});
