// The console's Apps pages end to end in a real headless Chromium (Debian's /usr/bin/chromium),
// driven by Playwright, against a real `keyward serve --public-url` on a port chosen
// beforehand, with its own data dir. A developer registers an app with the public half of an
// APP pair from `keyward keys generate --key-type APP`; the owner of another workspace
// (provisioned with the operator token) sets a password on the setup page, reviews what the
// app asks for on the consent screen, grants less, and installs it; both sides show the
// installation; the app's token carries only the grant; uninstalling ends it.
//
//   KEYWARD_BIN=target/debug/keyward node --test apps.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.KEYWARD_BIN ?? path.resolve("../../target/debug/keyward");
const CHROMIUM = process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const DEV_EMAIL = "owner@localhost";
const ORG_EMAIL = "owner@org.example";

let server, base, mk, op, dir, browser;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The public URL must be the address it listens at (assertions name it as their audience).
function startServer(port) {
  const child = spawn(BIN, ["serve", "--data-dir", path.join(dir, "data"), "--listen", `127.0.0.1:${port}`, "--public-url", `http://127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`keyward did not start:\n${err}`)), 30000);
    child.stderr.on("data", (chunk) => {
      err += chunk;
      const addr = err.match(/keyward listening addr=([0-9.:]+)/);
      const key = err.match(/[a-z0-9]+_mk_[A-Za-z0-9]+/);
      const operator = err.match(/kw_op_[A-Za-z0-9_]+/);
      if (addr && key && operator) {
        clearTimeout(timer);
        resolve({ child, base: `http://${addr[1]}`, mk: key[0], op: operator[0] });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`keyward exited (${code}):\n${err}`));
    });
  });
}

async function api(token, method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  return context.newPage();
}

async function signIn(page, email) {
  await page.goto(`${base}/console/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
}

/** An app's assertion (EdDSA), signed here with the APP pair's secret, exchanged for a token. */
async function buyToken(secretHex, appId, installationId) {
  const key = crypto.createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(secretHex, "hex")]), format: "der", type: "pkcs8" });
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "EdDSA", typ: "JWT" })}.${b64({ iss: appId, sub: installationId, aud: `${base}/v1/oauth/token`, iat: now, exp: now + 120, jti: crypto.randomUUID() })}`;
  const assertion = `${input}.${crypto.sign(null, Buffer.from(input), key).toString("base64url")}`;
  const r = await fetch(`${base}/v1/oauth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }),
  });
  return { status: r.status, body: await r.json() };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keyward-apps-"));
  let err;
  for (let i = 0; i < 3 && !server; i++) {
    // The port chosen may be taken before the server binds it: try another.
    ({ child: server, base, mk, op } = await startServer(await freePort()).catch((e) => { err = e; return {}; }));
  }
  if (!server) throw err;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // The developer: the server's first workspace, whose owner gets a password.
  assert.equal((await api(mk, "POST", "/v1/members/me/password", { password: PASSWORD })).status, 204);
});

after(async () => {
  await browser?.close();
  server?.kill();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("a developer registers an app, another workspace installs it with less, both see it, uninstall ends it", async () => {
  // An APP pair as the CLI makes it, in a config file of this test's own.
  const config = path.join(dir, "config.toml");
  const publicKey = execFileSync(BIN, ["keys", "generate", "--key-type", "APP", "--env", "live", "--config", config], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  assert.match(publicKey, /^[0-9a-f]{64}$/);
  const secret = fs.readFileSync(config, "utf8").match(/app_secret\s*=\s*"([0-9a-f]{64})"/)?.[1];
  assert.ok(secret, "the config holds app_secret");

  // The developer registers it on the Apps page (one menu entry: Apps).
  const dev = await newPage();
  await signIn(dev, DEV_EMAIL);
  await dev.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Apps" }).click();
  await dev.getByRole("heading", { name: "Apps", exact: true }).waitFor();
  await dev.getByText("No apps.").waitFor();
  await dev.getByLabel("Name", { exact: true }).fill("Ledger sync");
  await dev.getByLabel("Description").fill("Keeps your ledger in step");
  await dev.getByLabel("APP public key (hex)").fill(publicKey);
  await dev.getByLabel("Algorithm", { exact: true }).selectOption("ed25519");
  await dev.getByLabel(/^Permissions it asks for/).fill("ledger.read, ledger.write");
  await dev.getByLabel("Scopes it asks for").fill("ledger:*");
  await dev.getByRole("button", { name: "Register app" }).click();
  const appSection = dev.getByRole("region", { name: "Ledger sync" });
  await appSection.waitFor();
  const appId = (await appSection.locator("code").first().textContent()).trim();
  assert.match(appId, /^app_/);
  assert.ok((await appSection.getByRole("table", { name: "Keys of Ledger sync" }).textContent()).includes(publicKey));
  const registered = (await api(mk, "GET", `/v1/apps/${appId}`)).body;
  assert.deepEqual([registered.permissions, registered.scopes, registered.algorithm], [["ledger.read", "ledger.write"], ["ledger:*"], "ed25519"]);

  // Another workspace: provisioned by the operator; its owner sets a password on the setup page.
  const ws = await api(op, "POST", "/v1/workspaces", { name: "Org", owner_email: ORG_EMAIL });
  assert.equal(ws.status, 201, JSON.stringify(ws.body));
  const org = await newPage();
  await org.goto(`${base}/console/setup`);
  await org.getByLabel("Setup token").fill(ws.body.owner.setup_token);
  await org.getByLabel("New password", { exact: true }).fill(PASSWORD);
  await org.getByLabel("New password again").fill(PASSWORD);
  await org.getByRole("button", { name: "Set password" }).click();
  await org.getByText("Your password is set").waitFor();
  await signIn(org, ORG_EMAIL);

  // Installed apps → the consent screen lists what it asks for; the owner grants less.
  await org.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Apps" }).click();
  await org.getByRole("link", { name: "Installed apps" }).click();
  await org.getByRole("heading", { name: "Installed apps", exact: true }).waitFor();
  await org.getByText("No apps installed.").waitFor();
  await org.getByLabel("App id").fill(appId);
  await org.getByRole("button", { name: "Review what it asks for" }).click();
  await org.getByRole("heading", { name: "Install Ledger sync" }).waitFor();
  const permissions = org.getByRole("group", { name: "Permissions" });
  const read = permissions.getByRole("checkbox", { name: "ledger.read" });
  const write = permissions.getByRole("checkbox", { name: "ledger.write" });
  assert.ok((await read.isChecked()) && (await write.isChecked()), "everything asked for is ticked at first");
  assert.ok(await org.getByRole("group", { name: "Scopes" }).getByRole("checkbox", { name: "ledger:*" }).isChecked());
  await write.uncheck();
  await org.getByRole("button", { name: "Install Ledger sync" }).click();
  await org.getByRole("heading", { name: "Installed apps", exact: true }).waitFor();
  const row = org.getByRole("row").filter({ hasText: "Ledger sync" });
  await row.waitFor();
  const rowText = await row.textContent();
  assert.match(rowText, /ledger\.read/);
  assert.doesNotMatch(rowText, /ledger\.write/);
  assert.match(rowText, /Active/);
  const installationId = (await row.locator("code").filter({ hasText: /^inst_/ }).textContent()).trim();

  // The developer's page shows where it is installed, with the grant.
  await dev.reload();
  const where = dev.getByRole("table", { name: "Where Ledger sync is installed" }).getByRole("row").filter({ hasText: installationId });
  await where.waitFor();
  const whereText = await where.textContent();
  assert.ok(whereText.includes(ws.body.id) && whereText.includes("active") && whereText.includes("ledger.read"), whereText);
  assert.ok(!whereText.includes("ledger.write"), whereText);

  // The app's token carries what was granted, nothing more.
  const bought = await buyToken(secret, appId, installationId);
  assert.equal(bought.status, 200, JSON.stringify(bought.body));
  const v = await api(null, "POST", "/v1/keys/verify", { key: bought.body.access_token, permissions: "ledger.read" });
  assert.equal(v.body.code, "VALID", JSON.stringify(v.body));
  assert.equal(v.body.kind, "app_token");
  assert.equal((await api(null, "POST", "/v1/keys/verify", { key: bought.body.access_token, permissions: "ledger.write" })).body.code, "INSUFFICIENT_PERMISSIONS");

  // Uninstall: gone from the organisation's list of active apps, and from the app's reach.
  await row.getByRole("button", { name: "Uninstall Ledger sync" }).click();
  await org.getByRole("heading", { name: "Installed apps", exact: true }).waitFor();
  await org.getByRole("button", { name: "Uninstall Ledger sync" }).waitFor({ state: "detached" });
  for (const r of await org.getByRole("row").filter({ hasText: installationId }).all()) {
    assert.doesNotMatch(await r.textContent(), /Active/);
  }
  const after = (await api(mk, "GET", `/v1/apps/${appId}/installations`)).body.items.find((i) => i.id === installationId);
  assert.equal(after.status, "uninstalled");
  await dev.reload();
  const whereAfter = await dev.getByRole("table", { name: "Where Ledger sync is installed" }).textContent();
  assert.ok(!whereAfter.includes("active"), whereAfter);
  const refused = await buyToken(secret, appId, installationId);
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error, "invalid_grant");
});
