// Verification against a real server: secret keys, limits, credits, bindings, verify tokens,
// signed requests (Ed25519 and secp256k1) and the signing vectors shared with the server.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createPublicKey, createHash, verify as cryptoVerify, ECDH } from "node:crypto";
import { Keyward, KeywardError, Signer, stringToSign, signingDigest } from "@keyward/sdk";
import { client, server, startServer, unique, REPO_DIR } from "./helpers.mjs";

test("verify: VALID with every answer field, MALFORMED, INSUFFICIENT_PERMISSIONS", async () => {
  const kw = await client();
  const s = await server();
  const key = await kw.keys.create({ name: unique("verify"), environment: "live", permissions: ["wallet.read", "tx.create"], scopes: ["wallet:*"], meta: { plan: "pro" } });
  const anon = new Keyward({ baseUrl: s.url }); // verification needs no management key
  const v = await anon.verify({ key: key.secret, permissions: "wallet.read AND (tx.create OR tx.approve)", scope: "wallet:w_1" });
  assert.equal(v.valid, true);
  assert.equal(v.code, "VALID");
  assert.equal(v.key_id, key.id);
  assert.equal(v.name, key.name);
  assert.equal(v.environment, "live");
  assert.deepEqual(v.meta, { plan: "pro" });
  assert.deepEqual(v.permissions.sort(), ["tx.create", "wallet.read"]);
  if (s.workspaceId) assert.equal(v.workspace_id, s.workspaceId);

  assert.equal((await anon.verify({ key: key.secret, permissions: ["wallet.read", "tx.create"] })).code, "VALID", "a list means all of them");
  const lacking = await anon.verify({ key: key.secret, permissions: ["wallet.read", "tx.approve"] });
  assert.equal(lacking.valid, false);
  assert.equal(lacking.code, "INSUFFICIENT_PERMISSIONS");
  assert.equal((await anon.verify({ key: "not-a-key" })).code, "MALFORMED");
});

test("verify: rate-limit and credits answer fields", async () => {
  const kw = await client();
  const key = await kw.keys.create({ name: unique("limited"), ratelimits: [{ name: "burst", limit: 2, duration: "1m" }], credits: { remaining: 3 } });
  let v = await kw.verify({ key: key.secret });
  assert.equal(v.code, "VALID");
  assert.equal(v.ratelimit.name, "burst");
  assert.equal(v.ratelimit.limit, 2);
  assert.equal(v.ratelimit.remaining, 1);
  assert.ok(v.ratelimit.reset > Date.now());
  assert.equal(v.credits.remaining, 2);
  v = await kw.verify({ key: key.secret, cost: 0 });
  assert.equal(v.credits.remaining, 2, "cost 0 checks without spending");
  v = await kw.verify({ key: key.secret });
  assert.equal(v.credits.remaining, 1);
  v = await kw.verify({ key: key.secret });
  assert.equal(v.valid, false);
  assert.equal(v.code, "RATE_LIMITED");
  assert.equal(v.ratelimit.remaining, 0);

  const spent = await kw.keys.create({ name: unique("credits"), credits: { remaining: 1 } });
  assert.equal((await kw.verify({ key: spent.secret })).code, "VALID");
  const out = await kw.verify({ key: spent.secret });
  assert.equal(out.code, "USAGE_EXCEEDED");
  assert.equal(out.credits.remaining, 0);
});

test("verify: environment and workspace binding, per call and per client", async () => {
  const kw = await client();
  const s = await server();
  const key = await kw.keys.create({ name: unique("bound"), environment: "test" });
  assert.equal((await kw.verify({ key: key.secret, environment: "live" })).code, "WRONG_ENVIRONMENT");
  assert.equal((await kw.verify({ key: key.secret, environment: "test" })).code, "VALID");
  const liveOnly = new Keyward({ baseUrl: s.url, environment: "live" });
  assert.equal((await liveOnly.verify({ key: key.secret })).code, "WRONG_ENVIRONMENT");

  const otherWs = "ws_" + "0".repeat(26);
  assert.equal((await kw.verify({ key: key.secret, workspace_id: otherWs })).code, "NOT_FOUND");
  if (s.workspaceId) {
    const mine = new Keyward({ baseUrl: s.url, workspaceId: s.workspaceId });
    assert.equal((await mine.verify({ key: key.secret })).code, "VALID");
  }
  const err = await kw.verify({ key: key.secret, workspace_id: "nope" }).catch((e) => e);
  assert.ok(err instanceof KeywardError);
  assert.equal(err.status, 400);
  assert.equal(err.field, "workspace_id");
});

test("verify tokens and NOT_FOUND: Keyward-Verify-Token on a server that requires one, and workspace tokens", async () => {
  const own = await startServer(["--verify-token", "operator-secret-token"]);
  try {
    const admin = new Keyward({ baseUrl: own.url, managementKey: own.managementKey });
    const key = await admin.keys.create({ name: "vt" });
    // A well-formed key this server (the shared one) never made: NOT_FOUND.
    assert.equal((await (await client()).verify({ key: key.secret })).code, "NOT_FOUND");
    const err = await new Keyward({ baseUrl: own.url }).verify({ key: key.secret }).catch((e) => e);
    assert.ok(err instanceof KeywardError);
    assert.equal(err.status, 401);
    assert.equal(err.code, "unauthenticated");
    const withToken = new Keyward({ baseUrl: own.url, verifyToken: "operator-secret-token" });
    assert.equal((await withToken.verify({ key: key.secret })).code, "VALID");

    const vt = await admin.verifyTokens.create({ name: "billing-service" });
    assert.match(vt.token, /^kw_vt_/);
    assert.ok((await admin.verifyTokens.list()).items.some((t) => t.id === vt.id));
    const scoped = new Keyward({ baseUrl: own.url, verifyToken: vt.token });
    assert.equal((await scoped.verify({ key: key.secret })).code, "VALID");
    await admin.verifyTokens.revoke(vt.id);
    const refused = await scoped.verify({ key: key.secret }).catch((e) => e);
    assert.equal(refused.status, 401);
  } finally {
    own.stop();
  }
});

for (const algorithm of ["ed25519", "secp256k1"]) {
  test(`signed requests (${algorithm}): VALID, REPLAYED, INVALID_SIGNATURE, NONCE_EXPIRED, permissions`, async () => {
    const kw = await client();
    const pair = Signer.generate(algorithm);
    const signer = new Signer({ secretKey: pair.secretKey, algorithm });
    assert.equal(signer.publicKey, pair.publicKey);
    const key = await kw.keys.create({ name: unique(`signed-${algorithm}`), public_key: pair.publicKey, algorithm, permissions: ["tx.create"] });
    assert.equal(key.kind, "public");

    const req = { method: "POST", path: "/v2/transactions", query: "dry_run=true&limit=10", body: '{"amount":"1.5","memo":"café ☕"}' };
    const headers = signer.sign(req);
    const v = await kw.verifySigned({ ...req, headers, permissions: "tx.create" });
    assert.equal(v.code, "VALID", JSON.stringify(v));
    assert.equal(v.key_id, key.id);
    assert.equal((await kw.verifySigned({ ...req, headers })).code, "REPLAYED");

    const lower = Object.fromEntries(Object.entries(signer.sign(req)).map(([k, val]) => [k.toLowerCase(), val]));
    assert.equal((await kw.verifySigned({ ...req, body: req.body + " ", headers: lower })).code, "INVALID_SIGNATURE");
    assert.equal((await kw.verifySigned({ ...req, headers: signer.sign(req), permissions: "admin" })).code, "INSUFFICIENT_PERMISSIONS");
    const stale = signer.sign({ ...req, nonce: Date.now() - 10 * 60_000 });
    assert.equal((await kw.verifySigned({ ...req, headers: stale })).code, "NONCE_EXPIRED");
    assert.equal((await kw.verifySigned({ ...req, headers: {} })).code, "MALFORMED");
  });
}

test("signing matches the shared vectors (string, digest, Ed25519 signatures; secp256k1 low-S)", () => {
  const vectors = JSON.parse(readFileSync(join(REPO_DIR, "crates/keyward-core/tests/vectors/request-signing.json"), "utf8"));
  const ed = vectors.ed25519;
  const signer = new Signer({ secretKey: ed.secret_seed_hex });
  assert.equal(signer.publicKey, ed.public_key_hex);
  for (const c of ed.cases) {
    const req = { method: c.method, path: c.path, query: c.params, body: c.body, nonce: c.nonce };
    assert.equal(stringToSign(req), c.string_to_sign);
    assert.equal(signingDigest(c.string_to_sign).toString("hex"), c.digest_hex);
    assert.equal(signer.sign(req)["Biz-Api-Signature"], c.signature_hex);
  }
  const k1 = vectors.secp256k1;
  const ks = new Signer({ secretKey: k1.secret_hex, algorithm: "secp256k1" });
  assert.equal(ks.publicKey, k1.public_key_hex);
  const pub = createPublicKey({ key: { kty: "EC", crv: "secp256k1", ...jwkXY(ks) }, format: "jwk" });
  const halfN = BigInt("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141") / 2n;
  for (const c of k1.cases) {
    const once = createHash("sha256").update(c.string_to_sign, "utf8").digest();
    assert.ok(cryptoVerify("sha256", once, pub, Buffer.from(c.signature_der_hex, "hex")), "the vector verifies");
    for (let i = 0; i < 8; i++) {
      const sig = Buffer.from(ks.sign({ method: c.method, path: c.path, query: c.params, body: c.body, nonce: c.nonce })["Biz-Api-Signature"], "hex");
      assert.ok(cryptoVerify("sha256", once, pub, sig));
      const rLen = sig[3];
      const s = BigInt("0x" + sig.subarray(4 + rLen + 2).toString("hex"));
      assert.ok(s <= halfN, "low-S");
    }
  }
});

function jwkXY(signer) {
  // The uncompressed point from the compressed public key.
  const b = Buffer.from(ECDH.convertKey(signer.publicKey, "secp256k1", "hex", "hex", "uncompressed"), "hex");
  return { x: b.subarray(1, 33).toString("base64url"), y: b.subarray(33).toString("base64url") };
}

after(async () => (await server()).stop());
