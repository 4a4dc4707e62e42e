// Shared by the tests: the Keyward server to talk to, and small local HTTP helpers.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Keyward } from "@keyward/sdk";

export const SDK_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = join(SDK_DIR, "..", "..");

function keywardBin() {
  const bin = process.env.KEYWARD_BIN ?? "/tmp/keyward-sdk-bin";
  if (!existsSync(bin)) throw new Error(`no keyward binary: set KEYWARD_BIN (tried ${bin})`);
  return bin;
}

/** Starts `keyward serve` on a free port (or `listen`); resolves with { url, managementKey, workspaceId, operatorToken, stop }. */
export function startServer(extraArgs = [], { listen = "127.0.0.1:0" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "keyward-ts-"));
  const child = spawn(keywardBin(), ["serve", "--data-dir", join(dir, "data"), "--listen", listen, "--webhook-allow-private", ...extraArgs], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill(); reject(new Error("keyward serve did not start:\n" + log)); }, 30_000);
    child.on("exit", (code) => reject(new Error(`keyward serve exited ${code}:\n${log}`)));
    child.stderr.on("data", (d) => {
      log += d;
      const addr = /keyward listening.*addr=([0-9.:]+)/.exec(log);
      const mk = /[a-z0-9]+_mk_[A-Za-z0-9]+/.exec(log);
      const ws = /ws_[A-Za-z0-9]+/.exec(log);
      if (addr && mk && ws) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        const op = /kw_op_[A-Za-z0-9_]+/.exec(log);
        resolve({ url: `http://${addr[1]}`, managementKey: mk[0], workspaceId: ws[0], operatorToken: op?.[0], stop: () => child.kill() });
      }
    });
  });
}

let shared;
/** The server of the CI run ($KEYWARD_URL, $KEYWARD_MANAGEMENT_KEY, $KEYWARD_WORKSPACE_ID), or one of our own. */
export async function server() {
  if (!shared) {
    shared = process.env.KEYWARD_URL && process.env.KEYWARD_MANAGEMENT_KEY
      ? Promise.resolve({ url: process.env.KEYWARD_URL, managementKey: process.env.KEYWARD_MANAGEMENT_KEY, workspaceId: process.env.KEYWARD_WORKSPACE_ID, stop() {} })
      : startServer();
  }
  return shared;
}

/** A client with the owner's management key. */
export async function client(extra = {}) {
  const s = await server();
  return new Keyward({ baseUrl: s.url, managementKey: s.managementKey, ...extra });
}

/** A unique name for things a test creates. */
export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}

/** An HTTP listener on a free loopback port: resolves with { url, server, close }. */
export function listen(handler) {
  const srv = createServer(handler);
  return new Promise((resolve) => {
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      resolve({ url: `http://127.0.0.1:${port}`, port, server: srv, close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }) });
    });
  });
}

/** Runs an example app (examples/<name>.mjs) as its own process on a free port. */
export function runApp(name, env) {
  const child = spawn(process.execPath, [join(SDK_DIR, "examples", `${name}.mjs`)], {
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    cwd: SDK_DIR,
  });
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill(); reject(new Error(`${name} did not start:\n${out}`)); }, 20_000);
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`${name} exited ${code}:\n${out}`)); });
    const onData = (d) => {
      out += d;
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        resolve({ url: m[1], stop: () => new Promise((r) => { child.once("exit", r); child.kill(); }) });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
  });
}

/** Waits until `fn` returns a truthy value (polling), or fails after `ms`. */
export async function eventually(fn, ms = 15_000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
