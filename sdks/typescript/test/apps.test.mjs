// TokenSource against a real server of its own, started with --public-url (the token
// endpoint answers 503 without one) on a port chosen beforehand, so the public URL is the
// address it listens at. The server's first workspace develops an app; another, provisioned
// with the operator token, installs it with less than it asks for; the source buys, keeps,
// refreshes and re-buys that installation's tokens.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { Keyward, KeywardOAuthError, Signer, TokenSource, JWT_BEARER } from "@keyward/sdk";
import { server as sharedServer, startServer, unique } from "./helpers.mjs";

const PASSWORD = "correct horse battery staple";
let srv, org, orgId;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function api(token, method, path, body) {
  const r = await fetch(srv.url + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

before(async () => {
  let err;
  for (let i = 0; i < 3 && !srv; i++) {
    // The port chosen may be taken before the server binds it: try another.
    const port = await freePort();
    srv = await startServer(["--public-url", `http://127.0.0.1:${port}`], { listen: `127.0.0.1:${port}` }).catch((e) => { err = e; });
  }
  if (!srv) throw err;
  assert.ok(srv.operatorToken, "serve printed no operator token");
  const email = `${unique("owner")}@org.example`;
  const ws = await api(srv.operatorToken, "POST", "/v1/workspaces", { name: "Org", owner_email: email });
  await api(null, "POST", "/v1/members/setup", { setup_token: ws.owner.setup_token, password: PASSWORD });
  org = (await api(null, "POST", "/v1/sessions", { email, password: PASSWORD, workspace_id: ws.id })).token;
  orgId = ws.id;
});

after(async () => {
  srv?.stop();
  (await sharedServer()).stop(); // ours when KEYWARD_URL is not set (a no-op for CI's)
});

/** An app of the developer, with a new APP pair, installed by the organisation. */
async function install(algorithm) {
  const pair = Signer.generate(algorithm);
  const app = await api(srv.managementKey, "POST", "/v1/apps", {
    name: unique("ledger"), public_key: pair.publicKey, algorithm,
    permissions: ["ledger.read", "ledger.write"], scopes: ["ledger:*"],
  });
  const inst = await api(org, "POST", "/v1/installations", { app_id: app.id, permissions: ["ledger.read"], scopes: ["ledger:l_1"] });
  assert.equal(inst.status, "active");
  assert.equal(inst.workspace_id, orgId);
  return { appId: app.id, installationId: inst.id, secretKey: pair.secretKey, algorithm };
}

/** A fetch that records what the token endpoint was asked (grant types) and answered. */
function recorder() {
  const rec = { grants: [], answers: [] };
  rec.fetch = async (url, init) => {
    rec.grants.push(new URLSearchParams(init.body).get("grant_type"));
    const res = await fetch(url, init);
    rec.answers.push(await res.clone().json());
    return res;
  };
  return rec;
}

async function checkValid(token, app) {
  const kw = new Keyward({ baseUrl: srv.url });
  const v = await kw.verify({ key: token, permissions: "ledger.read" });
  assert.equal(v.code, "VALID", JSON.stringify(v));
  assert.equal(v.kind, "app_token");
  assert.equal(v.app_id, app.appId);
  assert.equal(v.installation_id, app.installationId);
  assert.deepEqual(v.permissions, ["ledger.read"]);
  assert.deepEqual(v.scopes, ["ledger:l_1"]);
  assert.equal((await kw.verify({ key: token, permissions: "ledger.write" })).code, "INSUFFICIENT_PERMISSIONS");
}

for (const algorithm of ["ed25519", "secp256k1"]) {
  test(`${algorithm}: a source buys, keeps, refreshes and re-buys`, async () => {
    const app = await install(algorithm);
    const rec = recorder();
    let now = Date.now();
    const client = new Keyward({ baseUrl: srv.url }); // a client works as the base URL too
    const tokens = new TokenSource({ client, ...app, fetch: rec.fetch, now: () => now });
    const first = await tokens.token();
    await checkValid(first, app);
    assert.equal(await tokens.authorization(), `Bearer ${first}`);
    assert.equal(await tokens.token(), first);
    assert.deepEqual(rec.grants, [JWT_BEARER], "a held token is not bought again");

    // A minute before its hour is up the token is replaced with the refresh token.
    now += (3600 - 61) * 1000;
    assert.equal(await tokens.token(), first);
    now += 2000;
    const second = await tokens.token();
    assert.notEqual(second, first);
    assert.deepEqual(rec.grants, [JWT_BEARER, "refresh_token"]);
    await checkValid(second, app);

    // The refresh token's family revoked: the refresh is refused, a new assertion buys one.
    const revoked = await fetch(srv.url + "/v1/oauth/revoke", { method: "POST", body: new URLSearchParams({ token: rec.answers.at(-1).refresh_token }) });
    assert.equal(revoked.status, 200);
    now += 3600 * 1000;
    const third = await tokens.token();
    assert.deepEqual(rec.grants, [JWT_BEARER, "refresh_token", "refresh_token", JWT_BEARER]);
    assert.equal(rec.answers.at(-2).error, "invalid_grant");
    await checkValid(third, app);

    // forget(): the next call signs a new assertion.
    tokens.forget();
    const fourth = await tokens.token();
    assert.ok(![first, second, third].includes(fourth));
    assert.equal(rec.grants.at(-1), JWT_BEARER);
  });

  test(`${algorithm}: a wrong key is invalid_client`, async () => {
    const app = await install(algorithm);
    const tokens = new TokenSource({ baseUrl: srv.url, ...app, signer: new Signer(Signer.generate(algorithm)) });
    await assert.rejects(tokens.token(), (e) => {
      assert.ok(e instanceof KeywardOAuthError, String(e));
      assert.equal(e.status, 401);
      assert.equal(e.code, "invalid_client");
      assert.equal(e.error, "invalid_client");
      assert.ok(e.message);
      return true;
    });
  });
}

test("concurrent calls share one purchase, and one refresh", async () => {
  const app = await install("secp256k1");
  const rec = recorder();
  let now = Date.now();
  const tokens = new TokenSource({ baseUrl: srv.url, ...app, fetch: rec.fetch, now: () => now });
  const got = await Promise.all(Array.from({ length: 8 }, () => tokens.token()));
  assert.equal(new Set(got).size, 1);
  assert.deepEqual(rec.grants, [JWT_BEARER]);
  now += 3600 * 1000;
  const again = await Promise.all(Array.from({ length: 8 }, () => tokens.token()));
  assert.equal(new Set(again).size, 1);
  assert.notEqual(again[0], got[0]);
  assert.deepEqual(rec.grants, [JWT_BEARER, "refresh_token"]);
});

test("an uninstalled app gets invalid_grant", async () => {
  const app = await install("ed25519");
  let now = Date.now();
  const tokens = new TokenSource({ baseUrl: srv.url, ...app, now: () => now });
  await tokens.token();
  await api(org, "DELETE", `/v1/installations/${app.installationId}`);
  now += 3600 * 1000; // the refresh is refused, and so is the new assertion
  await assert.rejects(tokens.token(), (e) => e instanceof KeywardOAuthError && e.status === 400 && e.code === "invalid_grant");
});

test("a server without --public-url answers server_error", async (t) => {
  const shared = await sharedServer();
  const tokens = new TokenSource({ baseUrl: shared.url, appId: "app_x", installationId: "inst_x", secretKey: Signer.generate().secretKey });
  const e = await tokens.token().then(() => undefined, (err) => err);
  assert.ok(e instanceof KeywardOAuthError, String(e));
  if (e.status !== 503) return t.skip("this server has a public URL");
  assert.equal(e.code, "server_error");
});
