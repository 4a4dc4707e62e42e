// Management against a real server: keys, roles, service accounts, usage, errors.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Keyward, KeywardError } from "@keyward/sdk";
import { client, server, unique, eventually } from "./helpers.mjs";

test("keys: create, get, list, iterate, update, rotate, revoke", async () => {
  const kw = await client();
  const name = unique("billing");
  const key = await kw.keys.create({ name, environment: "live", permissions: ["wallet.read"], meta: { team: "billing" } });
  assert.match(key.id, /^key_/);
  assert.equal(typeof key.secret, "string");
  assert.equal(key.name, name);
  assert.equal(key.environment, "live");
  assert.equal(key.status, "active");
  assert.deepEqual(key.permissions, ["wallet.read"]);
  assert.deepEqual(key.meta, { team: "billing" });

  const got = await kw.keys.get(key.id);
  assert.equal(got.id, key.id);
  assert.equal(got.secret ?? undefined, undefined, "the secret is never shown again");

  const page = await kw.keys.list({ q: name });
  assert.deepEqual(page.items.map((k) => k.id), [key.id]);

  const second = await kw.keys.create({ name: `${name}-2` });
  const ids = [];
  for await (const k of kw.keys.iterate({ q: name, limit: "1" })) ids.push(k.id);
  assert.deepEqual(ids.sort(), [key.id, second.id].sort(), "iterate follows next_cursor");

  const updated = await kw.keys.update(key.id, { name: `${name}-renamed`, permissions: ["wallet.read", "tx.create"], meta: null });
  assert.equal(updated.name, `${name}-renamed`);
  assert.deepEqual(updated.permissions, ["wallet.read", "tx.create"]);

  const rotated = await kw.keys.rotate(key.id, { grace_period: "0s" });
  assert.notEqual(rotated.id, key.id);
  assert.notEqual(rotated.secret, key.secret);
  assert.deepEqual(rotated.permissions, ["wallet.read", "tx.create"]);
  assert.equal((await kw.verify({ key: rotated.secret })).code, "VALID");
  assert.notEqual((await kw.verify({ key: key.secret })).code, "VALID", "0s grace: the old key stops at once");

  const revoked = await kw.keys.revoke(rotated.id);
  assert.equal(revoked.status, "revoked");
  assert.equal((await kw.verify({ key: rotated.secret })).code, "REVOKED");
  assert.equal((await kw.keys.revoke(rotated.id)).status, "revoked", "revoking twice is idempotent");
});

test("keys.create with an Idempotency-Key returns the first answer", async () => {
  const kw = await client();
  const body = { name: unique("idem") };
  const idempotencyKey = unique("idem-key");
  const a = await kw.keys.create(body, { idempotencyKey });
  const b = await kw.keys.create(body, { idempotencyKey });
  assert.equal(a.id, b.id);
  assert.equal(a.secret, b.secret);
  const err = await kw.keys.create({ name: unique("other") }, { idempotencyKey }).catch((e) => e);
  assert.ok(err instanceof KeywardError);
  assert.equal(err.status, 409);
  assert.equal(err.code, "conflict");
  assert.equal(err.field, "Idempotency-Key");
});

test("errors carry status, code, field and the request id", async () => {
  const kw = await client();
  let err = await kw.keys.get("key_doesnotexist").catch((e) => e);
  assert.ok(err instanceof KeywardError);
  assert.equal(err.status, 404);
  assert.equal(err.code, "not_found");
  assert.match(err.requestId, /.+/);

  err = await kw.keys.create({ name: "   " }).catch((e) => e);
  assert.equal(err.status, 400);
  assert.equal(err.code, "invalid_request");
  assert.equal(err.field, "name");
  assert.deepEqual(err.toJSON().error.field, "name");

  err = await kw.keys.create({ name: "x", environment: "staging" }).catch((e) => e);
  assert.equal(err.field, "environment");

  const s = await server();
  const anonymous = new Keyward({ baseUrl: s.url, managementKey: "kw_mk_notarealkey" });
  err = await anonymous.keys.list().catch((e) => e);
  assert.equal(err.status, 401);
  assert.equal(err.code, "unauthenticated");
});

test("roles: create, list, get, update, delete; a key's roles grant their permissions", async () => {
  const kw = await client();
  const name = unique("operator");
  const role = await kw.roles.create({ name, description: "ops", permissions: ["tx.*"] });
  assert.equal(role.name, name);
  assert.deepEqual(role.permissions, ["tx.*"]);
  assert.ok((await kw.roles.list()).items.some((r) => r.name === name));
  assert.equal((await kw.roles.get(name)).description, "ops");

  const key = await kw.keys.create({ name: unique("role-key"), roles: [name] });
  let v = await kw.verify({ key: key.secret, permissions: "tx.approve" });
  assert.equal(v.code, "VALID");
  assert.ok(v.roles.includes(name));
  assert.equal((await kw.verify({ key: key.secret, permissions: "wallet.read" })).code, "INSUFFICIENT_PERMISSIONS");

  const changed = await kw.roles.update(name, { permissions: ["wallet.read"] });
  assert.deepEqual(changed.permissions, ["wallet.read"]);
  v = await kw.verify({ key: key.secret, permissions: "wallet.read" });
  assert.equal(v.code, "VALID");

  const err = await kw.roles.delete(name).catch((e) => e);
  assert.equal(err.status, 409, "a role held by keys is not deleted without force");
  await kw.roles.delete(name, { force: true });
  assert.equal((await kw.roles.get(name).catch((e) => e)).status, 404);
});

test("service accounts: create, key, disable, delete", async () => {
  const kw = await client();
  const role = unique("sa-role");
  await kw.roles.create({ name: role, permissions: ["reports.read"] });
  const sa = await kw.serviceAccounts.create({ name: unique("etl"), role, description: "nightly" });
  assert.match(sa.id, /^sa_/);
  assert.equal(sa.kind, "service");
  const key = await kw.serviceAccounts.createKey(sa.id, { name: unique("etl-key") });
  assert.equal((await kw.verify({ key: key.secret, permissions: "reports.read" })).code, "VALID");
  assert.ok((await kw.serviceAccounts.list()).items.some((a) => a.id === sa.id));
  assert.equal((await kw.serviceAccounts.get(sa.id)).keys, 1);

  const disabled = await kw.serviceAccounts.update(sa.id, { disabled: true });
  assert.equal(disabled.disabled, true);
  assert.equal((await kw.verify({ key: key.secret })).code, "DISABLED");
  await kw.serviceAccounts.update(sa.id, { disabled: false });
  assert.equal((await kw.verify({ key: key.secret })).code, "VALID");

  await kw.serviceAccounts.delete(sa.id);
  assert.equal((await kw.verify({ key: key.secret })).code, "REVOKED");
  assert.equal((await kw.serviceAccounts.get(sa.id).catch((e) => e)).status, 404);
});

test("usage: per key and for the workspace", async () => {
  const kw = await client();
  const key = await kw.keys.create({ name: unique("usage"), permissions: ["a"] });
  await kw.verify({ key: key.secret });
  await kw.verify({ key: key.secret });
  await kw.verify({ key: key.secret, permissions: "b" });
  // Counts are kept in memory and flushed in batches (--flush-interval).
  const u = await eventually(async () => {
    const r = await kw.keys.usage(key.id, { granularity: "minute" });
    return r.total >= 3 && r;
  }, 30_000, "the key's usage");
  assert.equal(u.key_id, key.id);
  assert.equal(u.granularity, "minute");
  assert.equal(u.total, 3);
  assert.equal(u.by_code.VALID, 2);
  assert.equal(u.by_code.INSUFFICIENT_PERMISSIONS, 1);
  assert.ok(u.buckets.length > 0);
  const same = await kw.usage.key(key.id, { granularity: "minute" });
  assert.equal(same.total, 3);
  const ws = await kw.usage.workspace({ granularity: "hour" });
  assert.ok(ws.total >= 3);
  assert.ok(Array.isArray(ws.top_keys));
});

after(async () => (await server()).stop());
