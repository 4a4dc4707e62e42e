// TokenSource's retries, against a fake token endpoint that answers as each test scripts it:
// busy answers (429, 503) are retried — an assertion grant with a new assertion each time, a
// refresh grant with the same refresh token — and a refresh grant that got no answer is never
// sent again (the server may have spent it; a second use would revoke its family).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Keyward, KeywardOAuthError, Signer, TokenSource, JWT_BEARER } from "@keyward/sdk";
import { listen } from "./helpers.mjs";

const busy = { status: 503, headers: { "retry-after": "0" }, body: { error: "server_error", error_description: "the database is unavailable" } };
const slowDown = { status: 429, headers: { "retry-after": "0" }, body: { error: "slow_down", error_description: "too many tokens" } };
const invalidGrant = { status: 400, body: { error: "invalid_grant", error_description: "refused" } };

/**
 * A token endpoint giving the scripted answers in turn (the last one again once they run out):
 * "ok" a token (`at_<n>`, `rt_<n>` for the n-th request), "drop" the connection closed without
 * an answer, "cut" an answer closed halfway, "hang" none ever, else `{ status, headers, body }`.
 * `seen` holds each request's grant type, refresh token and assertion `jti`.
 */
async function tokenEndpoint(answers) {
  const seen = [];
  const srv = await listen((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      const assertion = form.get("assertion");
      seen.push({
        grant: form.get("grant_type"),
        refresh: form.get("refresh_token") ?? undefined,
        jti: assertion ? JSON.parse(Buffer.from(assertion.split(".")[1], "base64url").toString()).jti : undefined,
      });
      const n = seen.length;
      const a = answers[Math.min(n - 1, answers.length - 1)];
      if (a === "hang") return;
      if (a === "drop") return req.socket.destroy();
      if (a === "cut") {
        res.writeHead(200, { "content-type": "application/json", "content-length": "200" });
        return res.write('{"access_token": "at_', () => req.socket.destroy());
      }
      if (a === "ok") {
        const token = { access_token: `at_${n}`, token_type: "Bearer", expires_in: 3600, refresh_token: `rt_${n}` };
        return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(token));
      }
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers }).end(JSON.stringify(a.body));
    });
  });
  return { ...srv, seen, grants: () => seen.map((s) => (s.grant === JWT_BEARER ? "assertion" : s.grant)) };
}

/** A source for the endpoint whose clock (`clock.now`) the test moves. */
function source(srv, clock, options = {}) {
  return new TokenSource({
    baseUrl: srv.url, appId: "app_x", installationId: "inst_x", secretKey: Signer.generate().secretKey,
    now: () => clock.now, ...options,
  });
}

const HOUR = 3600 * 1000;

test("503 with Retry-After: 0 twice, then a token: three assertions, each with its own jti", async (t) => {
  const srv = await tokenEndpoint([busy, busy, "ok"]);
  t.after(() => srv.close());
  const tokens = source(srv, { now: Date.now() });
  assert.equal(await tokens.token(), "at_3");
  assert.deepEqual(srv.grants(), ["assertion", "assertion", "assertion"]);
  assert.equal(new Set(srv.seen.map((s) => s.jti)).size, 3, "a jti is single-use: each attempt signs a new assertion");
});

test("429 past the retries rejects with the last answer, after maxRetries + 1 requests", async (t) => {
  const srv = await tokenEndpoint([slowDown]);
  t.after(() => srv.close());
  const cases = [
    { what: "standalone: the default", options: {}, maxRetries: 2 },
    { what: "from a client: the client's", options: { baseUrl: undefined, client: new Keyward({ baseUrl: srv.url, maxRetries: 1 }) }, maxRetries: 1 },
    { what: "its own option first", options: { client: new Keyward({ baseUrl: srv.url, maxRetries: 5 }), maxRetries: 0 }, maxRetries: 0 },
  ];
  for (const c of cases) {
    srv.seen.length = 0;
    const tokens = source(srv, { now: Date.now() }, c.options);
    assert.equal(tokens.maxRetries, c.maxRetries, c.what);
    await assert.rejects(tokens.token(), (e) => {
      assert.ok(e instanceof KeywardOAuthError, String(e));
      assert.equal(e.status, 429);
      assert.equal(e.code, "slow_down");
      assert.equal(e.retryAfter, 0);
      return true;
    });
    assert.equal(srv.seen.length, c.maxRetries + 1, c.what);
  }
});

test("a Retry-After past a minute is not waited for", async (t) => {
  const srv = await tokenEndpoint([{ ...slowDown, headers: { "retry-after": "120" } }]);
  t.after(() => srv.close());
  const started = Date.now();
  await assert.rejects(source(srv, { now: Date.now() }).token(), (e) => e instanceof KeywardOAuthError && e.retryAfter === 120);
  assert.equal(srv.seen.length, 1);
  assert.ok(Date.now() - started < 5000);
});

test("an assertion grant that got no answer is retried with a new assertion", async (t) => {
  const srv = await tokenEndpoint(["drop", "cut", "ok"]);
  t.after(() => srv.close());
  const tokens = source(srv, { now: Date.now() });
  assert.equal(await tokens.token(), "at_3");
  assert.deepEqual(srv.grants(), ["assertion", "assertion", "assertion"]);
  assert.equal(new Set(srv.seen.map((s) => s.jti)).size, 3);
});

for (const [noAnswer, options] of [["drop", {}], ["cut", {}], ["hang", { timeoutMs: 300 }]]) {
  test(`a refresh grant that got no answer (${noAnswer}) is not sent again: a new assertion buys the token`, async (t) => {
    const srv = await tokenEndpoint(["ok", noAnswer, "ok"]);
    t.after(() => srv.close());
    const clock = { now: Date.now() };
    const tokens = source(srv, clock, options);
    assert.equal(await tokens.token(), "at_1");
    clock.now += HOUR;
    assert.equal(await tokens.token(), "at_3");
    assert.deepEqual(srv.grants(), ["assertion", "refresh_token", "assertion"]);
    assert.equal(srv.seen.filter((s) => s.refresh === "rt_1").length, 1, "rt_1 is sent exactly once");
    // The next refresh uses the new family's token.
    clock.now += HOUR;
    assert.equal(await tokens.token(), "at_4");
    assert.deepEqual(srv.seen.map((s) => s.refresh).filter(Boolean), ["rt_1", "rt_3"]);
  });
}

test("a refresh token that got no answer is dropped even when the assertion after it fails", async (t) => {
  const srv = await tokenEndpoint(["ok", "drop", invalidGrant, "ok"]);
  t.after(() => srv.close());
  const clock = { now: Date.now() };
  const tokens = source(srv, clock);
  await tokens.token();
  clock.now += HOUR;
  await assert.rejects(tokens.token(), (e) => e instanceof KeywardOAuthError && e.code === "invalid_grant");
  assert.equal(await tokens.token(), "at_4");
  assert.deepEqual(srv.grants(), ["assertion", "refresh_token", "assertion", "assertion"]);
});

test("a refresh answered 503, then 200: the same refresh token twice, no assertion", async (t) => {
  const srv = await tokenEndpoint(["ok", busy, "ok"]);
  t.after(() => srv.close());
  const clock = { now: Date.now() };
  const tokens = source(srv, clock);
  await tokens.token();
  clock.now += HOUR;
  assert.equal(await tokens.token(), "at_3");
  assert.deepEqual(srv.grants(), ["assertion", "refresh_token", "refresh_token"]);
  assert.deepEqual(srv.seen.map((s) => s.refresh).filter(Boolean), ["rt_1", "rt_1"]);
});

test("a refresh a proxy answered 502 is not sent again: a new assertion buys the token", async (t) => {
  const badGateway = { status: 502, body: { error: "bad_gateway", error_description: "upstream" } };
  const srv = await tokenEndpoint(["ok", badGateway, "ok"]);
  t.after(() => srv.close());
  const clock = { now: Date.now() };
  const tokens = source(srv, clock);
  await tokens.token();
  clock.now += HOUR;
  assert.equal(await tokens.token(), "at_3");
  assert.deepEqual(srv.grants(), ["assertion", "refresh_token", "assertion"]);
});

test("a refresh busy past the retries fails the call and keeps the refresh token", async (t) => {
  const srv = await tokenEndpoint(["ok", busy, busy, "ok"]);
  t.after(() => srv.close());
  const clock = { now: Date.now() };
  const tokens = source(srv, clock, { maxRetries: 1 });
  await tokens.token();
  clock.now += HOUR;
  await assert.rejects(tokens.token(), (e) => e instanceof KeywardOAuthError && e.status === 503);
  assert.equal(await tokens.token(), "at_4");
  assert.deepEqual(srv.grants(), ["assertion", "refresh_token", "refresh_token", "refresh_token"]);
  assert.deepEqual(srv.seen.map((s) => s.refresh).filter(Boolean), ["rt_1", "rt_1", "rt_1"]);
});

test("invalid_grant is not retried; a refused refresh falls back to one assertion", async (t) => {
  const srv = await tokenEndpoint([invalidGrant]);
  t.after(() => srv.close());
  await assert.rejects(source(srv, { now: Date.now() }).token(), (e) => e instanceof KeywardOAuthError && e.code === "invalid_grant");
  assert.equal(srv.seen.length, 1);

  const srv2 = await tokenEndpoint(["ok", invalidGrant, "ok"]);
  t.after(() => srv2.close());
  const clock = { now: Date.now() };
  const tokens = source(srv2, clock);
  await tokens.token();
  clock.now += HOUR;
  assert.equal(await tokens.token(), "at_3");
  assert.deepEqual(srv2.grants(), ["assertion", "refresh_token", "assertion"]);
});

test("concurrent callers share one grant, retries included", async (t) => {
  const srv = await tokenEndpoint([busy, "ok", busy, "ok"]);
  t.after(() => srv.close());
  const clock = { now: Date.now() };
  const tokens = source(srv, clock);
  const got = await Promise.all(Array.from({ length: 8 }, () => tokens.token()));
  assert.deepEqual(new Set(got), new Set(["at_2"]));
  clock.now += HOUR;
  const again = await Promise.all(Array.from({ length: 8 }, () => tokens.token()));
  assert.deepEqual(new Set(again), new Set(["at_4"]));
  assert.deepEqual(srv.grants(), ["assertion", "assertion", "refresh_token", "refresh_token"]);
});

test("a caller's signal ends its own wait, not the grant others wait for", async (t) => {
  const srv = await tokenEndpoint([{ ...busy, headers: { "retry-after": "1" } }, "ok"]);
  t.after(() => srv.close());
  const clock = { now: Date.now() };
  const tokens = source(srv, clock);
  const gone = new AbortController();
  const abandoned = tokens.token({ signal: gone.signal });
  const waiting = tokens.authorization();
  setTimeout(() => gone.abort(), 50);
  const started = Date.now();
  await assert.rejects(abandoned, { name: "AbortError" });
  assert.ok(Date.now() - started < 900, "rejected at the abort, not after the retry's wait");
  assert.equal(await waiting, "Bearer at_2");
  // The grant went on: its token is held, and the next caller needs no request.
  assert.equal(await tokens.token({ signal: new AbortController().signal }), "at_2");
  assert.deepEqual(srv.grants(), ["assertion", "assertion"]);
  // A signal already aborted rejects at once and sends nothing.
  await assert.rejects(tokens.token({ signal: AbortSignal.abort() }), { name: "AbortError" });
  clock.now += HOUR;
  await assert.rejects(tokens.token({ signal: AbortSignal.abort() }), { name: "AbortError" });
  assert.equal(srv.seen.length, 2);
});
