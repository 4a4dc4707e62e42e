// Transport rules: the time-out, retries only for idempotent calls, connection errors. A local
// listener plays a slow or failing network in front of Keyward; the last test uses the real server.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Keyward, KeywardError, KeywardTimeoutError, KeywardConnectionError } from "@keyward/sdk";
import { listen, server, client, unique } from "./helpers.mjs";

function flaky(answers) {
  const seen = [];
  return listen((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const a = answers[Math.min(seen.length - 1, answers.length - 1)];
      if (a === "hang") return; // never answers
      res.writeHead(a.status, { "content-type": "application/json", ...(a.headers ?? {}) }).end(JSON.stringify(a.body ?? {}));
    });
  }).then((l) => ({ ...l, seen }));
}

const unavailable = { status: 503, body: { error: { code: "unavailable", message: "database unreachable" } } };

test("a time-out rejects with KeywardTimeoutError after the allowed retries", async (t) => {
  const srv = await flaky(["hang"]);
  t.after(() => srv.close());
  const kw = new Keyward({ baseUrl: srv.url, managementKey: "kw_mk_x", timeoutMs: 150, maxRetries: 1 });
  const started = Date.now();
  const err = await kw.keys.list().catch((e) => e);
  assert.ok(err instanceof KeywardTimeoutError);
  assert.ok(err instanceof KeywardError);
  assert.equal(err.code, "timeout");
  assert.equal(err.status, undefined);
  assert.equal(srv.seen.length, 2, "a GET is retried once");
  assert.ok(Date.now() - started < 3000);
});

test("idempotent calls are retried on 503; the answer after the retry is returned", async (t) => {
  const srv = await flaky([unavailable, { status: 200, body: { items: [], next_cursor: null } }]);
  t.after(() => srv.close());
  const kw = new Keyward({ baseUrl: srv.url, managementKey: "kw_mk_x" });
  assert.deepEqual(await kw.keys.list({ limit: "5" }), { items: [], next_cursor: null });
  assert.equal(srv.seen.length, 2);
  assert.equal(srv.seen[0].url, "/v1/keys?limit=5");
  assert.equal(srv.seen[0].headers.authorization, "Bearer kw_mk_x");
});

test("verify is retried; verifySigned and non-idempotent POSTs are not", async (t) => {
  const srv = await flaky([unavailable]);
  t.after(() => srv.close());
  const kw = new Keyward({ baseUrl: srv.url, managementKey: "kw_mk_x", maxRetries: 2 });
  let err = await kw.verify({ key: "kw_test_sk_x" }).catch((e) => e);
  assert.equal(err.status, 503);
  assert.equal(err.code, "unavailable");
  assert.equal(srv.seen.length, 3, "verify: the first try and two retries");

  srv.seen.length = 0;
  err = await kw.verifySigned({ method: "GET", path: "/", headers: {} }).catch((e) => e);
  assert.equal(err.status, 503);
  assert.equal(srv.seen.length, 1, "a signed request's nonce is spent by the first try");

  srv.seen.length = 0;
  err = await kw.roles.create({ name: "r" }).catch((e) => e);
  assert.equal(srv.seen.length, 1, "creating a role has no Idempotency-Key: not retried");
});

test("keys.create is retried under one generated Idempotency-Key", async (t) => {
  const srv = await flaky([unavailable, { status: 201, body: { id: "key_1", secret: "s" } }]);
  t.after(() => srv.close());
  const kw = new Keyward({ baseUrl: srv.url, managementKey: "kw_mk_x" });
  const key = await kw.keys.create({ name: "n" });
  assert.equal(key.id, "key_1");
  assert.equal(srv.seen.length, 2);
  const [a, b] = srv.seen.map((s) => s.headers["idempotency-key"]);
  assert.ok(a && a === b);
  assert.equal(srv.seen[0].body, '{"name":"n"}');
});

test("Retry-After is honoured; 429 answers carry retryAfter when retries are used up", async (t) => {
  const limited = { status: 429, headers: { "retry-after": "1" }, body: { error: { code: "rate_limited", message: "slow down" } } };
  const srv = await flaky([limited, limited]);
  t.after(() => srv.close());
  const kw = new Keyward({ baseUrl: srv.url, managementKey: "kw_mk_x", maxRetries: 1 });
  const started = Date.now();
  const err = await kw.keys.get("key_1").catch((e) => e);
  assert.ok(Date.now() - started >= 900, "waited for Retry-After");
  assert.equal(err.status, 429);
  assert.equal(err.code, "rate_limited");
  assert.equal(err.retryAfter, 1);
});

test("a refused connection is a KeywardConnectionError", async () => {
  const kw = new Keyward({ baseUrl: "http://127.0.0.1:9", maxRetries: 0 });
  const err = await kw.verify({ key: "x" }).catch((e) => e);
  assert.ok(err instanceof KeywardConnectionError);
  assert.equal(err.code, "connection_error");
});

test("the package loads with require() (CommonJS) as well as import", async () => {
  const require = createRequire(import.meta.url);
  const cjs = require("@keyward/sdk");
  assert.equal(typeof cjs.Keyward, "function");
  assert.equal(typeof cjs.KeywardError, "function");
  assert.equal(typeof require("@keyward/sdk/express").keywardAuth, "function");
  assert.equal(typeof require("@keyward/sdk/hono").keywardAuth, "function");
  assert.equal(typeof require("@keyward/sdk/fastify").keywardAuth, "function");
  assert.equal(typeof require("@keyward/sdk/webhooks").verifyWebhook, "function");
  // The CommonJS build talks to the real server too.
  const s = await server();
  const kw = new cjs.Keyward({ baseUrl: s.url, managementKey: s.managementKey });
  const key = await kw.keys.create({ name: unique("cjs") });
  assert.equal((await kw.verify({ key: key.secret })).valid, true);
  await (await client()).keys.revoke(key.id);
});

after(async () => (await server()).stop());
