// Secure and unusual fleets for the end-to-end tests: a throwaway CA and certificates made
// with openssl, memcached with TLS (-Z), with text-protocol authentication (-Y), on a unix
// socket (-s) or on IPv6, and twemproxy (Debian's nutcracker) in front of memcacheds.
// Every process is started on ports or paths of its own and stopped by its process id.
// The exports are shared with the bridge's tests: keep their names and shapes stable.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, killChild, memcachedUser } from "./servers.mjs";

/** How long a freshly started server may take to accept connections. */
const START_TIMEOUT_MS = 5000;

/** A fresh directory under the system temp dir; `remove()` deletes it. */
export function tempDir(prefix = "memcache-wasm-secure-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function openssl(args, cwd) {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** An EC P-256 key and a certificate signing request for `cn`. */
function request(dir, name, cn) {
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], dir);
}

/** A self-signed CA valid for two days. */
function authority(dir, name, cn) {
  openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${cn}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
}

/**
 * Makes a CA, a server certificate for localhost, 127.0.0.1 and ::1, a client certificate,
 * a second CA that signed nothing here, and a server certificate (same names, same CA)
 * that expired in 2020. Returns the paths of the PEM files.
 */
export function makeCertificates(dir) {
  authority(dir, "ca", "memcache-wasm test CA");
  authority(dir, "wrong-ca", "memcache-wasm wrong CA");
  writeFileSync(join(dir, "server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n");
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  request(dir, "server", "localhost");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "server.pem", "-days", "2", "-extfile", "server.ext"], dir);
  request(dir, "client", "memcache-wasm test client");
  openssl(["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "client.pem", "-days", "2", "-extfile", "client.ext"], dir);
  // `openssl ca` is the one OpenSSL 3.0 command that sets both dates of a certificate.
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), "1000\n");
  writeFileSync(join(dir, "ca.cnf"), [
    "[ ca ]", "default_ca = test_ca", "[ test_ca ]", `database = ${join(dir, "index.txt")}`,
    `new_certs_dir = ${dir}`, `serial = ${join(dir, "serial")}`, "default_md = sha256",
    "policy = any", "unique_subject = no", "[ any ]", "commonName = supplied", "",
  ].join("\n"));
  request(dir, "expired", "localhost");
  openssl(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr",
    "-out", "expired.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
    "-extfile", "server.ext", "-notext"], dir);
  return {
    ca: join(dir, "ca.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client.key"),
    wrongCa: join(dir, "wrong-ca.pem"),
    expiredCert: join(dir, "expired.pem"),
    expiredKey: join(dir, "expired.key"),
  };
}

/** Resolves once `connectOptions` (net.connect's) accepts a connection. */
export async function waitForListener(connectOptions, what, child) {
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode} before listening`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(connectOptions, () => { s.destroy(); resolve(true); });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} did not listen within ${START_TIMEOUT_MS} ms`);
    await sleep(20);
  }
}

/**
 * One server process (memcached or nutcracker) with how to reach it: `address` in the
 * client's form, `stop()` by its pid (SIGKILL), `restart()` with the same arguments.
 */
export class Process {
  constructor(command, args, address, connectOptions, what) {
    this.command = command;
    this.args = args;
    this.address = address;
    this.connectOptions = connectOptions;
    this.what = what;
    this.child = null;
    this.port = connectOptions.port;
  }

  async start() {
    this.child = spawn(this.command, this.args, { stdio: ["ignore", "ignore", "pipe"] });
    this.stderr = "";
    this.child.stderr.on("data", (d) => { if (this.stderr.length < 10_000) this.stderr += d; });
    await waitForListener(this.connectOptions, this.what, this.child);
    return this;
  }

  async stop() {
    const child = this.child;
    this.child = null;
    await killChild(child);
  }

  async restart() {
    await this.stop();
    await this.start();
  }
}

async function startMemcachedWith(args, { host = "127.0.0.1" } = {}) {
  const port = await freePort();
  const listen = host.includes(":") ? `[${host}]` : host;
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const p = new Process("memcached", [...memcachedUser(), "-U", "0", "-l", listen, "-p", String(port), ...args],
    address, { host, port }, `memcached on ${address}`);
  return p.start();
}

/**
 * memcached speaking TLS only (-Z) with `cert`/`key` (default: the good server pair of
 * `certs`); `requireClientCert` adds ssl_ca_cert and ssl_verify_mode=2 (a client must
 * show a certificate `certs.ca` signed).
 */
export function startTlsMemcached(certs, { cert = certs.serverCert, key = certs.serverKey, requireClientCert = false, host, args = [] } = {}) {
  let settings = `ssl_chain_cert=${cert},ssl_key=${key}`;
  if (requireClientCert) settings += `,ssl_ca_cert=${certs.ca},ssl_verify_mode=2`;
  return startMemcachedWith(["-Z", "-o", settings, ...args], { host });
}

/** An auth file for memcached -Y: a `user:password` line per entry of `users`. */
export function writeAuthFile(dir, users) {
  const file = join(dir, `auth-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, Object.entries(users).map(([u, p]) => `${u}:${p}\n`).join(""));
  return file;
}

/** memcached with text-protocol authentication (-Y) for `users` ({ name: password }). */
export function startAuthMemcached(dir, users, { args = [] } = {}) {
  return startMemcachedWith(["-Y", writeAuthFile(dir, users), ...args]);
}

/** memcached listening on a unix socket only (-s <dir>/<name>.sock); address "unix:/path". */
export async function startUnixMemcached(dir, { name = `mc-${Math.random().toString(36).slice(2)}`, args = [] } = {}) {
  const path = join(dir, `${name}.sock`);
  if (existsSync(path)) rmSync(path);
  const p = new Process("memcached", [...memcachedUser(), "-s", path, ...args], `unix:${path}`, { path }, `memcached on ${path}`);
  p.path = path;
  return p.start();
}

/** memcached on IPv6 loopback; address "[::1]:port". */
export function startIpv6Memcached({ args = [] } = {}) {
  return startMemcachedWith(args, { host: "::1" });
}

/**
 * twemproxy (nutcracker) on a free port in front of `backends` (addresses "host:port"),
 * ketama over them (md5, libmemcached's ketama hash: with fnv1a_64 nutcracker gave one of three
 * backends none of 300 keys), hosts never ejected (a test sees each failure as it is).
 */
export async function startNutcracker(dir, backends, { timeoutMs = 2000 } = {}) {
  const port = await freePort();
  const statsPort = await freePort();
  const conf = join(dir, `nutcracker-${port}.yml`);
  writeFileSync(conf, [
    "pool:",
    `  listen: 127.0.0.1:${port}`,
    "  hash: md5",
    "  distribution: ketama",
    `  timeout: ${timeoutMs}`,
    "  auto_eject_hosts: false",
    "  preconnect: false",
    "  servers:",
    // Named servers: nutcracker's ketama then hashes the names, not the free ports this
    // run happened to get, so the keys' spread over the backends is the same every run.
    ...backends.map((b, i) => `   - ${b}:1 backend${i}`),
    "",
  ].join("\n"));
  const p = new Process("nutcracker", ["-c", conf, "-s", String(statsPort), "-a", "127.0.0.1", "-o", join(dir, `nutcracker-${port}.log`)],
    `127.0.0.1:${port}`, { host: "127.0.0.1", port }, `nutcracker on ${port}`);
  return p.start();
}
