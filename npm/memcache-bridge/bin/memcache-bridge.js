#!/usr/bin/env node
// The `memcache-bridge` command of the npm package: finds the binary that npm installed for
// this platform (an optionalDependency such as memcache-bridge-linux-x64, the way esbuild
// ships its binary) and runs it with the same arguments, passing signals on so SIGTERM
// still shuts the bridge down gracefully.
"use strict";
const { spawn } = require("node:child_process");

/** `${process.platform} ${process.arch}` to the package holding that platform's binary. */
const PLATFORM_PACKAGES = {
  "linux x64": "memcache-bridge-linux-x64",
};

function binaryPath() {
  const platform = `${process.platform} ${process.arch}`;
  const pkg = PLATFORM_PACKAGES[platform];
  if (pkg === undefined) {
    fail(`no prebuilt memcache-bridge for ${platform}; build it from the repository with \`cargo install --path bridge\` and run \`memcache-bridge\` itself`);
  }
  try {
    return require.resolve(`${pkg}/bin/memcache-bridge`);
  } catch {
    fail(`the package ${pkg} is not installed (was npm run with --omit=optional or --no-optional?): npm install ${pkg}`);
  }
}

function fail(message) {
  process.stderr.write(`memcache-bridge: ${message}\n`);
  process.exit(1);
}

const child = spawn(binaryPath(), process.argv.slice(2), { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("error", (e) => fail(`cannot start ${e.path}: ${e.message}`));
child.on("exit", (code, signal) => {
  // Exit as the bridge did: by its signal (after removing our handler) or with its code.
  if (signal !== null) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
