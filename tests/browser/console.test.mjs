// The web console end to end in a real headless Chromium (Debian's /usr/bin/chromium),
// driven by Playwright, against a real `keyward serve` on a free port with its own data dir.
// Elements are found by role and label, as a person (or a screen reader) finds them.
//
//   KEYWARD_BIN=target/debug/keyward node --test console.test.mjs
//   KEYWARD_SCREENSHOTS=docs/console  (optional) writes the README's screenshots too.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.KEYWARD_BIN ?? path.resolve("../../target/debug/keyward");
const SHOTS = process.env.KEYWARD_SCREENSHOTS;
const CHROMIUM = process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";

let server, base, mk, browser;

function startServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keyward-console-"));
  const child = spawn(BIN, ["serve", "--data-dir", path.join(dir, "data"), "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`keyward did not start:\n${err}`)), 30000);
    child.stderr.on("data", (chunk) => {
      err += chunk;
      const addr = err.match(/keyward listening addr=([0-9.:]+)/);
      const key = err.match(/[a-z0-9]+_mk_[A-Za-z0-9]+/);
      if (addr && key) {
        clearTimeout(timer);
        resolve({ child, base: `http://${addr[1]}`, mk: key[0] });
      }
    });
    child.on("exit", (code) => reject(new Error(`keyward exited (${code}):\n${err}`)));
  });
}

async function api(token, method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

// RFC 6238 (SHA-1, 6 digits, 30 s) for the authenticator app the test plays.
function totp(base32, step = Math.floor(Date.now() / 30000)) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac("sha1", key).update(msg).digest();
  const o = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1000000).padStart(6, "0");
}

async function invite(email, role) {
  const r = await api(mk, "POST", "/v1/members", { email, role });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.setup_token;
}

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  return context.newPage();
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, email, otp) {
  await page.goto(`${base}/console/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  if (otp) await page.getByLabel(/One-time code/).fill(otp);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
}

before(async () => {
  ({ child: server, base, mk } = await startServer());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  // The owner gets a password; an admin and a viewer are invited.
  assert.equal((await api(mk, "POST", "/v1/members/me/password", { password: PASSWORD })).status, 204);
});

after(async () => {
  await browser?.close();
  server?.kill();
});

// First, before the next test asks for an approval per new key.
test("a key's grants and limits, a rotation to follow, the environment switch, the audit trail", async () => {
  assert.equal((await api(mk, "POST", "/v1/roles", { name: "ledger-writer", permissions: ["ledger.write"] })).status, 201);
  const live = await api(mk, "POST", "/v1/keys", { name: "ledger-live", environment: "live" });
  const testKey = await api(mk, "POST", "/v1/keys", { name: "ledger-test", environment: "test" });
  assert.equal(live.status, 201, JSON.stringify(live.body));
  assert.equal(testKey.status, 201, JSON.stringify(testKey.body));
  const page = await newPage();
  await signIn(page, "owner@localhost");

  // At 1280 px the header does not wrap: the menu is one row, brand and account one row.
  const rows = await page.locator("header.top nav a").evaluateAll((as) => as.map((a) => Math.round(a.getBoundingClientRect().top)));
  assert.equal(new Set(rows).size, 1, `menu rows: ${rows}`);
  assert.ok(await page.locator("header.top nav").evaluate((n) => n.scrollWidth <= n.clientWidth), "the menu fits");
  const top = async (sel) => Math.round(await page.locator(sel).first().evaluate((e) => e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2));
  const brand = await top("header.top .brand");
  for (const sel of ["header.top form.env", "header.top .who"]) assert.ok(Math.abs((await top(sel)) - brand) <= 4, `${sel} beside the brand`);

  // The environment switch: live keys only, remembered in a cookie for the next page.
  await page.getByRole("button", { name: "Show Live data" }).click();
  await page.getByRole("link", { name: "ledger-live" }).waitFor();
  assert.equal(await page.getByRole("link", { name: "ledger-test" }).count(), 0);
  assert.equal(await page.getByRole("button", { name: "Show Live data" }).getAttribute("aria-pressed"), "true");
  const envCookie = (await page.context().cookies()).find((c) => c.name === "kw_env");
  assert.ok(envCookie && envCookie.value === "live" && envCookie.httpOnly, JSON.stringify(envCookie));
  const other = await page.context().newPage();
  await other.goto(`${base}/console/keys`);
  await other.getByRole("link", { name: "ledger-live" }).waitFor();
  assert.equal(await other.getByRole("link", { name: "ledger-test" }).count(), 0);
  await other.goto(`${base}/console/keys/new`);
  assert.equal(await other.getByLabel("Environment").inputValue(), "live");
  await other.close();
  await shot(page, "environment-live");

  // Grants and limits edited on the key's page; a refusal shown beside its field.
  await page.getByRole("link", { name: "ledger-live" }).click();
  await page.getByRole("heading", { name: "ledger-live" }).waitFor();
  const keyUrl = page.url();
  await page.getByLabel("Grants", { exact: true }).fill("ledger-writer=ledger:l_1, ledger:l_2");
  await page.getByLabel("Rate limits", { exact: true }).fill("10/1s, burst=100/1m");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText("ledger-writer in ledger:l_1, ledger:l_2").waitFor();
  await page.getByText("burst: 100 per 1m").waitFor();
  const edited = (await api(mk, "GET", `/v1/keys/${live.body.id}`)).body;
  assert.deepEqual(edited.grants, [{ role: "ledger-writer", scopes: ["ledger:l_1", "ledger:l_2"] }]);
  await page.getByLabel("Grants", { exact: true }).fill("ghost=ledger:l_1");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.locator("#grants-error").waitFor();
  assert.match(await page.locator("#grants-error").textContent(), /no role named/);
  assert.equal(await page.getByLabel("Grants", { exact: true }).getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByLabel("Grants", { exact: true }).inputValue(), "ghost=ledger:l_1");

  // A rotation with a grace period: both keys say when the old one stops, and link each other.
  await page.goto(keyUrl);
  await page.getByLabel("Grace period for the old key").selectOption("24h");
  await page.getByRole("button", { name: "Rotate key" }).click();
  await page.getByRole("heading", { name: "Secret key — shown only once" }).waitFor();
  await page.getByLabel("I have stored it").check();
  await page.getByRole("button", { name: "Continue" }).click();
  const banner = page.locator("#rotation");
  await banner.waitFor();
  assert.match(await banner.textContent(), /Rotating\s+— old key stops at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
  await shot(page, "key-rotating");
  await banner.getByRole("link", { name: live.body.id }).click();
  await page.getByRole("heading", { name: "ledger-live" }).waitFor();
  assert.equal(page.url(), keyUrl);
  assert.match(await page.locator("#rotation").textContent(), /old key stops at/);
  assert.equal(await page.getByRole("button", { name: "Rotate key" }).count(), 0);

  // The audit log reads the edit as before → after.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).click();
  const change = page.locator("ul.changes li").filter({ hasText: /^grants: none → / });
  await change.first().waitFor();
  assert.ok(!(await page.content()).includes("{&quot;changes&quot;"));

  // Back to both environments.
  await page.getByRole("button", { name: "Show All data" }).click();
  await page.goto(`${base}/console/keys`);
  await page.getByRole("link", { name: "ledger-test" }).waitFor();
});

test("the seeds' portal flows in a real browser", async () => {
  const adminToken = await invite("admin2@example.com", "admin");
  const viewerToken = await invite("viewer@example.com", "viewer");

  // An invited admin sets a password on the setup page.
  const admin = await newPage();
  await admin.goto(`${base}/console/setup`);
  await shot(admin, "setup");
  await admin.getByLabel("Setup token").fill(adminToken);
  await admin.getByLabel("New password", { exact: true }).fill(PASSWORD);
  await admin.getByLabel("New password again").fill(PASSWORD);
  await admin.getByRole("button", { name: "Set password" }).click();
  await admin.getByText("Your password is set").waitFor();
  assert.equal((await api("", "POST", "/v1/members/setup", { setup_token: viewerToken, password: PASSWORD })).status, 200);

  // The owner signs in.
  const owner = await newPage();
  await owner.goto(`${base}/console/login`);
  await shot(owner, "login");
  await signIn(owner, "owner@localhost");

  // The session cookie: HttpOnly, SameSite=Strict.
  const cookies = await owner.context().cookies();
  const session = cookies.find((c) => c.name === "kw_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));

  // Create a secret key and read it once.
  await owner.getByRole("link", { name: "Create secret key" }).click();
  await owner.getByLabel("Name", { exact: true }).fill("billing-service");
  await owner.getByLabel("Environment").selectOption("live");
  await owner.getByLabel(/Temporary/).check();
  await owner.getByLabel("Expiry", { exact: true }).selectOption("30d");
  await owner.getByLabel("Permissions").fill("wallet.read, tx.create");
  await owner.getByLabel("Scopes").fill("wallet:*");
  await owner.getByLabel("Group").fill("payments");
  await shot(owner, "key-create");
  await owner.getByRole("button", { name: "Create key" }).click();
  await owner.getByRole("heading", { name: "Secret key — shown only once" }).waitFor();
  const secret = (await owner.locator("#revealed").textContent()).trim();
  assert.match(secret, /^[a-z0-9]+_live_/);
  assert.ok(await owner.getByRole("button", { name: "Copy to clipboard" }).isVisible());
  const proceed = owner.getByRole("button", { name: "Continue" });
  assert.ok(await proceed.isDisabled(), "Continue waits for 'I have stored it'");
  await shot(owner, "key-reveal");
  await owner.getByLabel("I have stored it").check();
  await proceed.click();
  await owner.getByRole("heading", { name: "billing-service" }).waitFor();
  assert.ok(!(await owner.content()).includes(secret));
  // The secret verifies; reloading shows it nowhere again.
  for (let i = 0; i < 5; i++) {
    const v = await fetch(`${base}/v1/keys/verify`, { method: "POST", body: JSON.stringify({ key: secret }) });
    assert.equal((await v.json()).code, "VALID");
  }
  await owner.reload();
  assert.ok(!(await owner.content()).includes(secret));
  const keyUrl = owner.url();
  await owner.goto(`${base}/console/reveal`);
  await owner.getByRole("heading", { name: "Nothing to show" }).waitFor();
  assert.ok(!(await owner.content()).includes(secret));

  // Register a public key (Ed25519, pasted as hex).
  const { publicKey } = crypto.generateKeyPairSync("ed25519");
  const hex = publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("hex");
  await owner.goto(`${base}/console/keys`);
  await owner.getByRole("link", { name: "Register public key" }).click();
  await owner.getByLabel("Name", { exact: true }).fill("partner-signer");
  await owner.getByLabel("Public key (hex)").fill(hex);
  await owner.getByLabel("Algorithm").selectOption("ed25519");
  await owner.getByRole("button", { name: "Register key" }).click();
  await owner.getByRole("heading", { name: "partner-signer" }).waitFor();
  assert.ok((await owner.content()).includes(hex));

  // The owner requires one admin's approval to create keys.
  await owner.getByRole("link", { name: "Policies" }).click();
  await owner.getByLabel("Approvals needed for Creating a key").fill("1");
  await owner.locator('input[name="key.create.roles"][value="admin"]').check();
  await owner.getByRole("button", { name: "Save policy" }).click();
  await owner.getByRole("heading", { name: "Policies" }).waitFor();
  assert.equal((await api(mk, "GET", "/v1/policies")).body["key.create"].approvals, 1);
  await shot(owner, "policies");

  // A create now waits: "Pending approval (create)".
  await owner.goto(`${base}/console/keys/new`);
  await owner.getByLabel("Name", { exact: true }).fill("needs-approval");
  await owner.getByRole("button", { name: "Create key" }).click();
  await owner.getByText(/pending approval \(create\)/).waitFor();
  await owner.getByLabel("I have stored it").check();
  await owner.getByRole("button", { name: "Continue" }).click();
  await owner.getByText("Pending approval (create)").first().waitFor();
  const pendingUrl = owner.url();

  // The second admin enrols one-time codes (QR code drawn by the server) ...
  await signIn(admin, "admin2@example.com");
  await admin.getByRole("link", { name: "admin2@example.com" }).click();
  await admin.getByRole("button", { name: "Set up one-time codes" }).click();
  await admin.getByRole("img", { name: "QR code for your authenticator app" }).waitFor();
  await shot(admin, "mfa-enrol");
  const totpSecret = (await admin.locator("#totp-secret").textContent()).trim();
  const step = Math.floor(Date.now() / 30000);
  await admin.getByLabel("Code from the app").fill(totp(totpSecret, step));
  await admin.getByRole("button", { name: "Turn on" }).click();
  await admin.getByRole("heading", { name: "Recovery codes — shown only once" }).waitFor();
  assert.equal((await admin.locator("#revealed").textContent()).trim().split("\n").length, 10);
  await admin.getByLabel("I have stored it").check();
  await admin.getByRole("button", { name: "Continue" }).click();

  // ... and approves the pending create with a one-time code (the next step's: the one
  // used to enrol is spent).
  await admin.getByRole("link", { name: "Approvals" }).click();
  await admin.getByRole("heading", { name: /Create key “needs-approval”/ }).waitFor();
  await shot(admin, "approvals");
  await admin.getByLabel("One-time code").first().fill(totp(totpSecret, step + 1));
  await admin.getByRole("button", { name: "Approve" }).click();
  await admin.getByText("No pending requests.").waitFor();
  await owner.goto(pendingUrl);
  await owner.getByText("Active", { exact: true }).first().waitFor();

  // Revoke, with a confirmation.
  await owner.goto(keyUrl);
  await shot(owner, "key-detail");
  await owner.getByRole("link", { name: "Revoke key…" }).click();
  await owner.getByRole("heading", { name: "Revoke “billing-service”?" }).waitFor();
  await owner.getByRole("button", { name: "Revoke key" }).click();
  await owner.getByText("Revoked", { exact: true }).first().waitFor();
  const v = await fetch(`${base}/v1/keys/verify`, { method: "POST", body: JSON.stringify({ key: secret }) });
  assert.equal((await v.json()).code, "REVOKED");

  // A webhook endpoint, its secret shown once, and a test delivery listed.
  await owner.getByRole("link", { name: "Webhooks" }).click();
  await owner.getByLabel("URL").fill("https://hooks.example.com/keyward");
  await owner.getByLabel("Events").fill("key.*, approval.*");
  await owner.getByRole("button", { name: "Add endpoint" }).click();
  await owner.getByRole("heading", { name: "Signing secret — shown only once" }).waitFor();
  assert.match((await owner.locator("#revealed").textContent()).trim(), /^whsec_/);
  await owner.getByLabel("I have stored it").check();
  await owner.getByRole("button", { name: "Continue" }).click();
  await owner.getByRole("button", { name: "Send a test event" }).click();
  await owner.getByRole("cell", { name: "webhook.test", exact: true }).waitFor();
  await shot(owner, "webhook");

  // The pages a person reads: keys, members, audit, usage; light and dark.
  await owner.goto(`${base}/console/keys`);
  await shot(owner, "keys");
  await owner.getByRole("link", { name: "Members" }).click();
  await owner.getByRole("cell", { name: "viewer@example.com", exact: true }).waitFor();
  await shot(owner, "members");
  await owner.getByRole("link", { name: "Audit log" }).click();
  await owner.getByRole("cell", { name: "key.revoke", exact: true }).first().waitFor();
  await shot(owner, "audit");
  await owner.getByRole("link", { name: "Usage" }).click();
  await owner.getByRole("img", { name: /Verifications in this workspace/ }).waitFor();
  await shot(owner, "usage");
  const dark = await newPage({ colorScheme: "dark", storageState: await owner.context().storageState() });
  await dark.goto(keyUrl);
  await shot(dark, "key-detail-dark");

  // Keyboard: Tab from the top reaches the skip link, then the menu.
  await owner.goto(`${base}/console/keys`);
  await owner.keyboard.press("Tab");
  assert.equal(await owner.evaluate(() => document.activeElement.textContent), "Skip to content");

  // A form posted without its CSRF token is refused, and nothing is created.
  const forged = await owner.request.post(`${base}/console/keys`, { form: { kind: "secret", name: "forged" } });
  assert.equal(forged.status(), 403);
  assert.match(await forged.text(), /security token/);
  assert.equal((await api(mk, "GET", "/v1/keys?q=forged")).body.items.length, 0);

  // A viewer sees no create button, and the server refuses the form anyway.
  const viewer = await newPage();
  await signIn(viewer, "viewer@example.com");
  await viewer.getByRole("link", { name: "billing-service" }).waitFor();
  assert.equal(await viewer.getByRole("link", { name: "Create secret key" }).count(), 0);
  assert.equal(await viewer.getByRole("link", { name: "Register public key" }).count(), 0);
  const refused = await viewer.goto(`${base}/console/keys/new`);
  assert.equal(refused.status(), 403);

  // Log out everywhere: the owner's other browser is signed out too.
  await dark.goto(`${base}/console/keys`);
  await dark.getByRole("heading", { name: "Keys", exact: true }).waitFor();
  await owner.getByRole("link", { name: "owner@localhost" }).click();
  await owner.getByRole("button", { name: "Log out everywhere" }).click();
  await owner.getByRole("heading", { name: "Sign in" }).waitFor();
  await dark.goto(`${base}/console/keys`);
  await dark.getByRole("heading", { name: "Sign in" }).waitFor();
});

test("roles, service accounts, management keys and verify tokens from the navigation", async () => {
  const page = await newPage();
  await signIn(page, "owner@localhost");
  const nav = page.getByRole("navigation", { name: "Main" });

  // Roles: create one, edit its permissions, delete it.
  await nav.getByRole("link", { name: "Roles" }).click();
  await page.getByRole("heading", { name: "Roles", exact: true }).waitFor();
  await page.getByLabel("Name").fill("support-reader");
  await page.getByLabel("Permissions").fill("tickets.read");
  await page.getByRole("button", { name: "Create role" }).click();
  await page.getByRole("heading", { name: "Role “support-reader”" }).waitFor();
  await page.getByLabel("Permissions").fill("tickets.read\ntickets.list");
  await page.getByRole("button", { name: "Save role" }).click();
  await page.getByText("tickets.read, tickets.list").waitFor();
  assert.deepEqual((await api(mk, "GET", "/v1/roles/support-reader")).body.permissions, ["tickets.read", "tickets.list"]);
  await shot(page, "role");

  // Service accounts: one with that role and a key, disabled then enabled.
  await nav.getByRole("link", { name: "Service accounts" }).click();
  await page.getByLabel("Name").fill("helpdesk-bot");
  await page.getByLabel("Role").selectOption("support-reader");
  await page.getByRole("button", { name: "Create service account" }).click();
  const sa = (await api(mk, "GET", "/v1/service-accounts")).body.items.find((a) => a.name === "helpdesk-bot");
  const k = await api(mk, "POST", `/v1/service-accounts/${sa.id}/keys`, { name: "helpdesk-key" });
  assert.equal(k.status, 201, JSON.stringify(k.body));
  await page.reload();
  await page.getByRole("link", { name: "helpdesk-key" }).waitFor();
  await page.getByRole("button", { name: "Disable helpdesk-bot" }).click();
  await page.getByRole("button", { name: "Enable helpdesk-bot" }).waitFor();
  // (The first test asks for an approval per new key, so this key waits on one: the
  // account's state is read from the API; tests/integration/console.rs verifies its keys.)
  assert.equal((await api(mk, "GET", `/v1/service-accounts/${sa.id}`)).body.disabled, true);
  await shot(page, "service-accounts");
  await page.getByRole("button", { name: "Enable helpdesk-bot" }).click();
  await page.getByRole("button", { name: "Disable helpdesk-bot" }).waitFor();
  assert.equal((await api(mk, "GET", `/v1/service-accounts/${sa.id}`)).body.disabled, false);

  // A management key: shown once, it works, revoked it stops.
  await nav.getByRole("link", { name: "Management keys" }).click();
  await page.getByLabel("Name").fill("deploy");
  await page.getByRole("button", { name: "Create management key" }).click();
  await page.getByRole("heading", { name: "Management key — shown only once" }).waitFor();
  const minted = (await page.locator("#revealed").textContent()).trim();
  assert.match(minted, /_mk_/);
  assert.equal((await api(minted, "GET", "/v1/keys")).status, 200);
  await page.getByLabel("I have stored it").check();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Management keys", exact: true }).waitFor();
  assert.ok(!(await page.content()).includes(minted));
  await page.getByRole("button", { name: /Revoke management key deploy/ }).click();
  await page.getByText("Revoked", { exact: true }).first().waitFor();
  assert.equal((await api(minted, "GET", "/v1/keys")).status, 401);

  // A verify token: shown once, revoked.
  await nav.getByRole("link", { name: "Verify tokens" }).click();
  await page.getByLabel("Name").fill("billing service");
  await page.getByRole("button", { name: "Create verify token" }).click();
  await page.getByRole("heading", { name: "Verify token — shown only once" }).waitFor();
  const vt = (await page.locator("#revealed").textContent()).trim();
  await page.getByLabel("I have stored it").check();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Verify tokens", exact: true }).waitFor();
  assert.ok(!(await page.content()).includes(vt));
  await shot(page, "verify-tokens");
  await page.getByRole("button", { name: /Revoke verify token billing service/ }).click();
  await page.getByText("Revoked", { exact: true }).first().waitFor();

  // Back to roles: the role is deleted once no account holds it.
  const del = await api(mk, "DELETE", `/v1/service-accounts/${sa.id}`);
  assert.equal(del.status, 204);
  await nav.getByRole("link", { name: "Roles" }).click();
  await page.getByRole("link", { name: "support-reader" }).click();
  await page.getByRole("button", { name: "Delete role support-reader" }).click();
  await page.getByRole("heading", { name: "Roles", exact: true }).waitFor();
  assert.equal(await page.getByRole("link", { name: "support-reader" }).count(), 0);

  // `/` leads to the console.
  await page.goto(`${base}/`);
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
});

test("the core flows work with JavaScript off", async () => {
  const page = await newPage({ javaScriptEnabled: false });
  await signIn(page, "viewer@example.com");
  await page.goto(`${base}/console/login`);
  const owner = await newPage({ javaScriptEnabled: false });
  await signIn(owner, "owner@localhost");
  await owner.goto(`${base}/console/keys/new`);
  await owner.getByLabel("Name", { exact: true }).fill("no-script");
  await owner.getByRole("button", { name: "Create key" }).click();
  await owner.getByRole("heading", { name: "Secret key — shown only once" }).waitFor();
  // Without script the copy button stays hidden and the checkbox is required by the form.
  assert.equal(await owner.getByRole("button", { name: "Copy to clipboard" }).count(), 0);
  await owner.getByLabel("I have stored it").check();
  await owner.getByRole("button", { name: "Continue" }).click();
  await owner.getByRole("heading", { name: "no-script" }).waitFor();
  // The key waits for approval (the policy of the first test).
  await owner.getByText("Pending approval (create)").first().waitFor();
});
