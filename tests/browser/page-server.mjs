// A plain static file server on loopback for test pages with inline scripts (an import map
// must be inline): memcache-bridge sends `script-src 'self' 'wasm-unsafe-eval'` with its
// --www files, which refuses them, as it should for its dashboard. The pages still talk to
// the bridge, which is started with `--allow-origin` for this server's origin.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

/** The content types of what the pages load. */
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/** Serves `root`; resolves with { origin, close() }. */
export function startPageServer(root) {
  return new Promise((resolve) => {
    const http = createServer(async (req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
      if (path.includes("..")) {
        res.writeHead(400).end();
        return;
      }
      try {
        const body = await readFile(join(root, path));
        res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    http.listen(0, "127.0.0.1", () => resolve({
      origin: `http://127.0.0.1:${http.address().port}`,
      close: () => new Promise((done) => http.close(done)),
    }));
  });
}
