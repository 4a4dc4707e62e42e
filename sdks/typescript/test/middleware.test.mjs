// The held-out apps (examples/*-app.mjs): Express, Hono and Fastify services protecting a route
// with the SDK's middleware, each run as its own process on a free port and called over HTTP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Signer } from "@keyward/sdk";
import { client, server, runApp, unique } from "./helpers.mjs";

let kw, good, lacking, revoked, limited, pub, signer;

before(async () => {
  kw = await client();
  good = await kw.keys.create({ name: unique("mw-good"), environment: "live", permissions: ["invoices.read"] });
  lacking = await kw.keys.create({ name: unique("mw-lacking"), environment: "live", permissions: ["invoices.write"] });
  revoked = await kw.keys.create({ name: unique("mw-revoked"), permissions: ["invoices.read"] });
  await kw.keys.revoke(revoked.id);
  limited = await kw.keys.create({ name: unique("mw-limited"), permissions: ["invoices.read"], ratelimits: [{ name: "default", limit: 1, duration: "1m" }] });
  const pair = Signer.generate();
  signer = new Signer({ secretKey: pair.secretKey });
  pub = await kw.keys.create({ name: unique("mw-signed"), public_key: pair.publicKey, algorithm: "ed25519", permissions: ["invoices.read"] });
});

function assertRefusal(res, body, status, code, verificationCode) {
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.equal(body.error.verification_code, verificationCode);
  assert.equal(res.headers.get("x-keyward-code"), verificationCode);
}

for (const name of ["express-app", "hono-app", "fastify-app"]) {
  test(`${name}: 401 without a key, 403 lacking the permission, 200 with a good key`, async (t) => {
    const s = await server();
    const app = await runApp(name, { KEYWARD_URL: s.url });
    t.after(() => app.stop());
    const get = async (headers = {}) => {
      const res = await fetch(`${app.url}/invoices`, { headers });
      return { res, body: await res.json() };
    };

    let { res, body } = await get();
    assertRefusal(res, body, 401, "unauthenticated", "MALFORMED");
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);

    ({ res, body } = await get({ "x-api-key": lacking.secret }));
    assertRefusal(res, body, 403, "forbidden", "INSUFFICIENT_PERMISSIONS");

    ({ res, body } = await get({ "x-api-key": good.secret }));
    assert.equal(res.status, 200);
    assert.equal(body.key_id, good.id, "the handler sees the verification");
    assert.deepEqual(body.permissions, ["invoices.read"]);

    ({ res, body } = await get({ authorization: `Bearer ${good.secret}` }));
    assert.equal(res.status, 200);
    assert.equal(body.key_id, good.id);

    ({ res, body } = await get({ "x-api-key": revoked.secret }));
    assertRefusal(res, body, 401, "unauthenticated", "REVOKED");

    ({ res, body } = await get({ "x-api-key": good.secret.slice(0, -4) + "AAAA" }));
    assert.equal(res.status, 401);
    assert.equal(body.error.code, "unauthenticated");

    // A signed request (Biz-Api-* headers, no secret) goes through the same middleware.
    ({ res, body } = await get(signer.sign({ method: "GET", path: "/invoices" })));
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.key_id, pub.id);
  });
}

test("rate-limited keys get 429 with Retry-After and RateLimit from every framework", async () => {
  const s = await server();
  const apps = await Promise.all(["express-app", "hono-app", "fastify-app"].map((n) => runApp(n, { KEYWARD_URL: s.url })));
  try {
    const first = await fetch(`${apps[0].url}/invoices`, { headers: { "x-api-key": limited.secret } });
    assert.equal(first.status, 200);
    for (const app of apps) {
      const res = await fetch(`${app.url}/invoices`, { headers: { "x-api-key": limited.secret } });
      const body = await res.json();
      assertRefusal(res, body, 429, "rate_limited", "RATE_LIMITED");
      assert.ok(Number(res.headers.get("retry-after")) >= 1);
      assert.match(res.headers.get("ratelimit") ?? "", /^"default";r=0;t=\d+$/);
    }
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
  }
});

test("Keyward unreachable: 503 unavailable in Keyward's error shape", async (t) => {
  const app = await runApp("express-app", { KEYWARD_URL: "http://127.0.0.1:9" });
  t.after(() => app.stop());
  const res = await fetch(`${app.url}/invoices`, { headers: { "x-api-key": good.secret } });
  const body = await res.json();
  assert.equal(res.status, 503);
  assert.equal(body.error.code, "unavailable");
});

after(async () => (await server()).stop());
