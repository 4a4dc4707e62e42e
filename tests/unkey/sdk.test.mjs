// Unkey's official TypeScript SDK (@unkey/api, pinned in package-lock.json) pointed at a
// running `keyward serve`: KEYWARD_URL (its base URL) and KEYWARD_ROOT_KEY (a management key).
// .ci/run starts the server and runs this with `node --test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Unkey } from "@unkey/api";

const serverURL = process.env.KEYWARD_URL;
const rootKey = process.env.KEYWARD_ROOT_KEY;
const apiId = process.env.KEYWARD_WORKSPACE_ID;
assert.ok(serverURL && rootKey && apiId, "KEYWARD_URL, KEYWARD_ROOT_KEY and KEYWARD_WORKSPACE_ID must be set");
const unkey = new Unkey({ rootKey, serverURL });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const verify = async (key, extra = {}) => (await unkey.keys.verifyKey({ key, ...extra })).data;

test("create, verify (permissions, rate limit, credits), update, disable, reroll, delete", async () => {
  const made = await unkey.keys.createKey({
    apiId,
    name: "ts-sdk",
    permissions: ["documents.read"],
    ratelimits: [{ name: "requests", limit: 3, duration: 60000, autoApply: true }],
    credits: { remaining: 3 },
    meta: { plan: "pro" },
  });
  assert.ok(made.meta.requestId);
  const { keyId, key } = made.data;

  let v = await verify(key, { permissions: "documents.read" });
  assert.equal(v.valid, true);
  assert.equal(v.code, "VALID");
  assert.equal(v.keyId, keyId);
  assert.equal(v.credits, 2);
  assert.deepEqual(v.meta, { plan: "pro" });

  v = await verify(key, { permissions: "documents.write" });
  assert.equal(v.valid, false);
  assert.equal(v.code, "INSUFFICIENT_PERMISSIONS");

  // A refusal spends nothing: two more uses, then the limit (3 a minute) refuses.
  assert.equal((await verify(key)).credits, 1);
  assert.equal((await verify(key)).credits, 0);
  v = await verify(key);
  assert.equal(v.code, "RATE_LIMITED");

  // More credits, a fresh rate limit: then the credits run out first.
  await unkey.keys.updateKey({ keyId, ratelimits: [{ name: "requests", limit: 100, duration: 60000 }] });
  v = await verify(key);
  assert.equal(v.code, "USAGE_EXCEEDED");
  const credits = await unkey.keys.updateCredits({ keyId, operation: "set", value: 5 });
  assert.equal(credits.data.remaining, 5);
  assert.equal((await verify(key)).code, "VALID");

  const got = await unkey.keys.getKey({ keyId });
  assert.equal(got.data.name, "ts-sdk");
  assert.equal(got.data.enabled, true);
  assert.deepEqual(got.data.permissions, ["documents.read"]);

  await unkey.keys.updateKey({ keyId, enabled: false });
  assert.equal((await verify(key)).code, "DISABLED");
  await unkey.keys.updateKey({ keyId, enabled: true });
  assert.equal((await verify(key)).code, "VALID");

  const rolled = await unkey.keys.rerollKey({ keyId, expiration: 1000 });
  assert.notEqual(rolled.data.keyId, keyId);
  assert.equal((await verify(rolled.data.key)).code, "VALID");
  assert.equal((await verify(key)).code, "VALID");
  await sleep(2500);
  assert.equal((await verify(key)).valid, false);

  await unkey.keys.deleteKey({ keyId: rolled.data.keyId });
  v = await verify(rolled.data.key);
  assert.equal(v.valid, false);
  assert.equal(v.code, "NOT_FOUND");
});

test("a retried verification with an Idempotency-Key spends once", async () => {
  const { key } = (await unkey.keys.createKey({ apiId, credits: { remaining: 10 } })).data;
  const headers = { "Idempotency-Key": `ts-${Date.now()}` };
  const first = await unkey.keys.verifyKey({ key, credits: { cost: 4 } }, { headers });
  const again = await unkey.keys.verifyKey({ key, credits: { cost: 4 } }, { headers });
  assert.equal(first.data.credits, 6);
  assert.equal(again.data.credits, 6);
});

test("migrate a SHA-256 key, then verify it", async () => {
  const secret = `legacy_${Date.now()}_ts`;
  const hash = createHash("sha256").update(secret).digest("hex");
  const m = await unkey.keys.migrateKeys({ apiId, migrationId: "sha256_hex", keys: [{ hash, name: "legacy" }] });
  assert.equal(m.data.migrated[0].hash, hash);
  assert.deepEqual(m.data.failed, []);
  assert.equal((await verify(secret)).code, "VALID");
});

test("roles, permissions, listKeys, whoami", async () => {
  const role = `ts_reader_${Date.now()}`;
  await unkey.permissions.createRole({ name: role, permissions: ["reports.read"] });
  const { keyId, key } = (await unkey.keys.createKey({ apiId, roles: [role] })).data;
  assert.equal((await verify(key, { permissions: "reports.read" })).code, "VALID");
  const who = await unkey.keys.whoami({ key });
  assert.equal(who.data.keyId, keyId);
  assert.deepEqual(who.data.roles, [role]);
  // A paged call: the SDK answers with a page iterator holding the body in `result`.
  const listed = await unkey.apis.listKeys({ apiId });
  assert.ok(listed.result.data.some((k) => k.keyId === keyId));
  assert.equal(typeof listed.result.pagination.hasMore, "boolean");
  await unkey.keys.setRoles({ keyId, roles: [] });
  assert.equal((await verify(key, { permissions: "reports.read" })).code, "INSUFFICIENT_PERMISSIONS");
});

test("ratelimit.limit", async () => {
  const identifier = `user_${Date.now()}`;
  const check = async () =>
    (await unkey.ratelimit.limit({ namespace: "sdk.ts", identifier, limit: 2, duration: 60000 })).data;
  assert.equal((await check()).success, true);
  assert.equal((await check()).success, true);
  const third = await check();
  assert.equal(third.success, false);
  assert.equal(third.remaining, 0);
});

test("errors in Unkey's shape: another apiId is 404, a bad root key 401", async () => {
  await assert.rejects(unkey.keys.createKey({ apiId: "api_not_mine" }), (e) => {
    assert.equal(e.statusCode, 404);
    return true;
  });
  const stranger = new Unkey({ rootKey: "not_a_root_key", serverURL });
  await assert.rejects(stranger.keys.getKey({ keyId: "key_123" }), (e) => {
    assert.equal(e.statusCode, 401);
    return true;
  });
});

test("identities: a limit shared by the keys of one externalId, named limits, credits.cost", async () => {
  const externalId = `ts_team_${Date.now()}`;
  const made = await unkey.identities.createIdentity({
    externalId,
    meta: { tier: "free" },
    ratelimits: [
      { name: "team", limit: 3, duration: 60000, autoApply: true },
      { name: "exports", limit: 2, duration: 60000 },
    ],
  });
  const identityId = made.data.identityId;
  const got = (await unkey.identities.getIdentity({ identity: externalId })).data;
  assert.equal(got.id, identityId);
  assert.deepEqual(got.meta, { tier: "free" });
  assert.deepEqual(
    got.ratelimits.map((l) => [l.name, l.autoApply]),
    [["team", true], ["exports", false]],
  );

  const a = (await unkey.keys.createKey({ apiId, externalId, credits: { remaining: 10 } })).data;
  const b = (await unkey.keys.createKey({ apiId, externalId })).data;
  const key = (await unkey.keys.getKey({ keyId: a.keyId })).data;
  assert.equal(key.identity.externalId, externalId);

  // credits.cost spends credits only; the shared limit spends 1; a named limit its cost.
  let v = await verify(a.key, { credits: { cost: 4 }, ratelimits: [{ name: "exports", cost: 2 }] });
  assert.equal(v.code, "VALID");
  assert.equal(v.credits, 6);
  assert.equal(v.identity.id, identityId);
  const byName = Object.fromEntries(v.ratelimits.map((l) => [l.name, l]));
  assert.equal(byName.team.remaining, 2);
  assert.equal(byName.exports.remaining, 0);
  assert.equal(byName.exports.autoApply, false);
  // The team limit is shared: three uses between the two keys, then both are limited.
  assert.equal((await verify(b.key)).code, "VALID");
  assert.equal((await verify(a.key)).code, "VALID");
  v = await verify(b.key);
  assert.equal(v.code, "RATE_LIMITED");
  assert.equal(v.ratelimits[0].exceeded, true);
  assert.equal((await verify(a.key)).code, "RATE_LIMITED");

  // listKeys by externalId; the identity among the listed ones; update; delete.
  const listed = await unkey.apis.listKeys({ apiId, externalId });
  assert.deepEqual(listed.result.data.map((k) => k.keyId).sort(), [a.keyId, b.keyId].sort());
  const ids = await unkey.identities.listIdentities({ search: externalId });
  assert.deepEqual((ids.result ?? ids).data.map((i) => i.externalId), [externalId]);
  const up = await unkey.identities.updateIdentity({ identity: identityId, meta: { tier: "pro" } });
  assert.deepEqual(up.data.meta, { tier: "pro" });
  await unkey.identities.deleteIdentity({ identity: externalId });
  await assert.rejects(unkey.identities.getIdentity({ identity: externalId }), (e) => {
    assert.equal(e.statusCode, 404);
    return true;
  });
  // Its keys keep working, without it.
  v = await verify(b.key);
  assert.equal(v.identity, undefined);
});
