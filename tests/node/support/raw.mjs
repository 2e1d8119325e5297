// A few memcached commands over a plain socket, to look at what the client stored (flags,
// bytes) without going through the client under test.
import net from "node:net";

/** Sends `command` and collects the reply until it ends with one of `terminators`. */
export function rawCommand(address, command, terminators = ["END\r\n"]) {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) });
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const text = buffer.toString("latin1");
      if (terminators.some((t) => text.endsWith(t))) {
        socket.destroy();
        resolve(buffer);
      }
    });
    socket.on("error", reject);
    socket.write(command);
  });
}

/** The item as memcached holds it: {flags, data} or undefined. */
export async function rawGet(address, key) {
  const reply = await rawCommand(address, `get ${key}\r\n`);
  const text = reply.toString("latin1");
  if (text === "END\r\n") return undefined;
  const m = /^VALUE \S+ (\d+) (\d+)\r\n/.exec(text);
  if (!m) throw new Error(`unexpected reply ${JSON.stringify(text.slice(0, 80))}`);
  const start = m[0].length;
  return { flags: Number(m[1]), data: reply.subarray(start, start + Number(m[2])) };
}

/** How many of `keys` the server holds now (one multi-get; unlike curr_items, this does not
 * count items that flush_all invalidated but memcached has not reclaimed yet). */
export async function presentCount(address, keys) {
  let present = 0;
  for (let i = 0; i < keys.length; i += 100) {
    const text = (await rawCommand(address, `get ${keys.slice(i, i + 100).join(" ")}\r\n`)).toString("latin1");
    present += (text.match(/^VALUE /gm) ?? []).length;
  }
  return present;
}

/** memcached's `stats` as { name: value } (values as the strings memcached sends). */
export async function rawStats(address) {
  const text = (await rawCommand(address, "stats\r\n")).toString("latin1");
  const stats = {};
  for (const m of text.matchAll(/^STAT (\S+) (.*)\r$/gm)) stats[m[1]] = m[2];
  return stats;
}
