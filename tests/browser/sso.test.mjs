// Single sign-on for the console end to end: a real OpenID provider (node's `oidc-provider`
// with its development login pages: any login name, here the person's email, and any
// password), a real `keyward serve`, and Debian's headless Chromium driven by Playwright.
// The provider puts `email` and `email_verified` in UserInfo (not in the ID token, as the
// specification has it for the code flow), so Keyward's UserInfo path is the one taken.
//
//   KEYWARD_BIN=target/debug/keyward node --test --test-concurrency=1 sso.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import Provider from "oidc-provider";
import { chromium } from "playwright-core";

const BIN = process.env.KEYWARD_BIN ?? path.resolve("../../target/debug/keyward");
const CHROMIUM = process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium";
const PASSWORD = "correct horse battery staple";
const CLIENT_SECRET = "sso-test-client-secret-0123456789";

let browser, idp, issuer;
const servers = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The provider: every login name is an account whose email is that name, verified unless
// the name starts with "unverified".
async function startProvider(redirectUris) {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-key", use: "sig", alg: "RS256" };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "keyward",
        client_secret: CLIENT_SECRET,
        redirect_uris: redirectUris,
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: ["authorization_code"],
        response_types: ["code"],
      },
    ],
    jwks: { keys: [jwk] },
    claims: { openid: ["sub"], email: ["email", "email_verified"] },
    cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
    features: { devInteractions: { enabled: true } },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: id, email_verified: !id.startsWith("unverified") }),
    }),
  });
  return new Promise((resolve) => {
    const server = provider.listen(port, "127.0.0.1", () => resolve(server));
  });
}

// A fresh data dir initialised with `keyward init` (its workspace id is known before
// `serve` starts), then `keyward serve` on a chosen port with single sign-on.
async function startKeyward(port, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keyward-sso-"));
  const data = path.join(dir, "data");
  const init = JSON.parse(execFileSync(BIN, ["init", "--data-dir", data, "--json"], { encoding: "utf8" }));
  const secretFile = path.join(dir, "client-secret");
  fs.writeFileSync(secretFile, `${CLIENT_SECRET}\n`, { mode: 0o600 });
  const base = `http://127.0.0.1:${port}`;
  const args = ["serve", "--data-dir", data, "--listen", `127.0.0.1:${port}`, "--public-url", base];
  args.push("--oidc-issuer", issuer, "--oidc-client-id", "keyward", "--oidc-client-secret-file", secretFile);
  const child = spawn(BIN, [...args, ...extra.map((a) => a.replace("{ws}", init.workspace_id))], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  servers.push(child);
  await new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error(`keyward did not start:\n${err}`)), 30000);
    child.stderr.on("data", (chunk) => {
      err += chunk;
      if (/keyward listening addr=/.test(err)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`keyward exited (${code}):\n${err}`)));
  });
  // Nothing of the client secret is ever logged.
  const logged = [];
  child.stderr.on("data", (chunk) => logged.push(String(chunk)));
  return { base, mk: init.management_key, workspace: init.workspace_id, logged };
}

async function api(kw, token, method, p, body) {
  const r = await fetch(kw.base + p, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

// An invited member who has set a password.
async function member(kw, email, role) {
  const inv = await api(kw, kw.mk, "POST", "/v1/members", { email, role });
  assert.equal(inv.status, 201, JSON.stringify(inv.body));
  const setup = await api(kw, "", "POST", "/v1/members/setup", { setup_token: inv.body.setup_token, password: PASSWORD });
  assert.equal(setup.status, 200, JSON.stringify(setup.body));
  return inv.body.id;
}

// RFC 6238 (SHA-1, 6 digits, 30 s), as in console.test.mjs.
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

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  return context.newPage();
}

// From Keyward's sign-in page through the provider's login and consent pages, back to
// Keyward.
async function ssoSignIn(page, kw, email) {
  await page.goto(`${kw.base}/console/login`);
  await page.getByRole("link", { name: "Sign in with SSO" }).click();
  await page.waitForURL((u) => u.href.startsWith(issuer));
  await page.locator('input[name="login"]').fill(email);
  await page.locator('input[name="password"]').fill("anything");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL((u) => u.href.startsWith(kw.base));
}

async function sessionCookies(page) {
  return (await page.context().cookies()).filter((c) => c.name.endsWith("kw_session") && c.value);
}

let plain, joining;

before(async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const callback = (p) => `http://127.0.0.1:${p}/console/oidc/callback`;
  idp = await startProvider([callback(p1), callback(p2)]);
  plain = await startKeyward(p1);
  joining = await startKeyward(p2, ["--oidc-auto-join-workspace", "{ws}", "--oidc-auto-join-role", "developer"]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.kill();
  idp?.close();
});

test("a member signs in through the provider and lands in the console", async () => {
  await member(plain, "dev@example.com", "developer");
  const page = await newPage();
  await ssoSignIn(page, plain, "dev@example.com");
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
  await page.getByText("dev@example.com").first().waitFor();
  assert.equal((await sessionCookies(page)).length, 1);
  // The flow and the proof are gone once signed in.
  const left = (await page.context().cookies()).filter((c) => /kw_(oidc|sso)$/.test(c.name) && c.value);
  assert.deepEqual(left, []);
  // On the record as a sign-in through single sign-on.
  const audit = await api(plain, plain.mk, "GET", "/v1/audit?action=session.login");
  const entry = audit.body.items.find((e) => e.actor?.name === "dev@example.com");
  assert.ok(entry, JSON.stringify(audit.body));
  assert.equal(entry.changes.method, "oidc");
  assert.ok(!plain.logged.join("").includes(CLIENT_SECRET));
  await page.context().close();
});

test("an unknown email is refused with a clear page and gets no session", async () => {
  const page = await newPage();
  await ssoSignIn(page, plain, "stranger@example.com");
  await page.getByRole("heading", { name: "Not signed in" }).waitFor();
  await page.getByText("stranger@example.com is not a member of any workspace here").waitFor();
  assert.deepEqual(await sessionCookies(page), []);
  // The console still wants a sign-in.
  await page.goto(`${plain.base}/console/keys`);
  await page.waitForURL(`${plain.base}/console/login`);
  await page.context().close();
});

test("an email the provider has not verified is refused", async () => {
  await member(plain, "unverified@example.com", "viewer");
  const page = await newPage();
  await ssoSignIn(page, plain, "unverified@example.com");
  await page.getByRole("heading", { name: "Not signed in" }).waitFor();
  await page.getByText("has not verified the email").waitFor();
  assert.deepEqual(await sessionCookies(page), []);
  await page.context().close();
});

test("a member with MFA is asked for the code after the provider", async () => {
  await member(plain, "mfa@example.com", "admin");
  const session = await api(plain, "", "POST", "/v1/sessions", { email: "mfa@example.com", password: PASSWORD });
  assert.equal(session.status, 201);
  const enrol = await api(plain, session.body.token, "POST", "/v1/members/me/mfa/totp", {});
  assert.equal(enrol.status, 200, JSON.stringify(enrol.body));
  const step = Math.floor(Date.now() / 30000);
  const confirm = await api(plain, session.body.token, "POST", "/v1/members/me/mfa/totp/confirm", {
    otp: totp(enrol.body.secret, step),
  });
  assert.equal(confirm.status, 200, JSON.stringify(confirm.body));

  const page = await newPage();
  await ssoSignIn(page, plain, "mfa@example.com");
  await page.getByText("Your sign-in provider verified mfa@example.com").waitFor();
  assert.deepEqual(await sessionCookies(page), [], "no session before the code");
  await page.getByLabel("One-time code").fill("000000");
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByText("invalid one-time code").waitFor();
  assert.deepEqual(await sessionCookies(page), []);
  await page.getByLabel("One-time code").fill(totp(enrol.body.secret, step + 1));
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
  assert.equal((await sessionCookies(page)).length, 1);
  await page.context().close();
});

test("with auto-join, a new verified email joins the named workspace with the role", async () => {
  const page = await newPage();
  await ssoSignIn(page, joining, "newcomer@example.com");
  await page.getByRole("heading", { name: "Keys", exact: true }).waitFor();
  const members = await api(joining, joining.mk, "GET", "/v1/members");
  const joined = members.body.items.find((m) => m.email === "newcomer@example.com");
  assert.ok(joined, JSON.stringify(members.body));
  assert.equal(joined.role, "developer");
  assert.equal(joined.status, "active");
  // Still refused where auto-join is off.
  const other = await newPage();
  await ssoSignIn(other, plain, "newcomer@example.com");
  await other.getByRole("heading", { name: "Not signed in" }).waitFor();
  await page.context().close();
  await other.context().close();
});
