// Turns what went wrong into a sentence a person can act on: what failed, and what to check
// or change. Keyed on the client's stable error codes (MemcacheError.code), so the advice
// does not depend on the wording of a message; memcached's and the bridge's own text is
// kept and shown, since it often names the exact cause.

/**
 * `error`: whatever was thrown. `context`: `{server, key, origin}` where known.
 * Returns `{summary, advice}`: `summary` says what happened, `advice` what to do about it.
 */
export function explain(error, context = {}) {
  const detail = error && error.message ? error.message : String(error);
  const server = error?.server ?? context.server;
  const where = server ? `memcached at ${server}` : "memcached";
  switch (error?.code) {
    case "BAD_KEY":
      return {
        summary: `That key cannot be used: ${detail}.`,
        advice: "A key is 1 to 250 bytes with no spaces or control characters.",
      };
    case "VALUE_TOO_LARGE":
      return {
        summary: `The value is too large to store: ${detail}.`,
        advice: "memcached keeps items up to its item size limit (1 MiB unless started with -I); store a smaller value.",
      };
    case "NOT_SERIALIZABLE":
      return { summary: `The value cannot be stored: ${detail}.`, advice: "Store text, a number, or valid JSON." };
    case "DECODE_ERROR":
      return {
        summary: `The stored value cannot be decoded: ${detail}.`,
        advice: "It was written with flags this client does not read; the program that wrote it knows its format.",
      };
    case "CONNECTION_ERROR":
      // 1006: the WebSocket ended without a close frame. After a refused handshake (a
      // wrong token, an origin not allowed) a browser sees only this, so say both causes.
      if (error.closeCode === WEBSOCKET_ABNORMAL_CLOSURE) return unreachableBridge(detail, server, context);
      return {
        summary: `Cannot reach ${where}: ${detail}.`,
        advice: `Check that memcached is running at ${server ?? "that address"} and that the bridge can reach it; the dashboard retries on its own.`,
      };
    case "TIMEOUT":
      return {
        summary: `${capitalize(where)} did not answer in time: ${detail}.`,
        advice: "The server may be overloaded or the network slow; the dashboard retries on its own.",
      };
    case "BRIDGE_REFUSED":
      return refusal(detail, context);
    case "NO_SERVER":
      return {
        summary: `No server is available for this key: ${detail}.`,
        advice: "Every server that could hold it is down; see the overview for why.",
      };
    case "METADUMP_REFUSED":
      return {
        summary: `${capitalize(where)} would not list its keys: ${detail}.`,
        advice: "Its LRU crawler may be off (-o no_lru_crawler) or busy with another listing; try again in a moment.",
      };
    case "SERVER_ERROR":
    case "CLIENT_ERROR":
    case "UNKNOWN_COMMAND":
      return {
        summary: `${capitalize(where)} refused the request: ${detail}.`,
        advice: "This is memcached's own answer; its text above says what it objects to.",
      };
    case "PROTOCOL_ERROR":
      return {
        summary: `${capitalize(where)} sent an answer that is not the memcached protocol: ${detail}.`,
        advice: "Check that the bridge's upstream is a memcached server and not another service.",
      };
    case "BAD_ARGUMENT":
      return { summary: `That input is not valid: ${detail}.`, advice: "Correct the field and try again." };
    case "CLOSED":
      return { summary: "The connection to the bridge was closed.", advice: "Reload the page to reconnect." };
    default:
      return { summary: detail, advice: "" };
  }
}

/** The close code a browser reports when a WebSocket ends without a close frame. */
const WEBSOCKET_ABNORMAL_CLOSURE = 1006;

function unreachableBridge(detail, server, context) {
  const checks = [];
  if (context.tokenRequired) checks.push("that the token is one of the bridge's --token-file lines (Change token, above)");
  checks.push(`that the bridge allows this page's origin (--allow-origin ${context.origin ?? "ORIGIN"})`);
  checks.push("that the bridge is still running");
  return {
    summary: `The bridge refused or dropped the connection to ${server ?? "memcached"}: ${detail}.`,
    advice: `A browser is not told why; check ${checks.join(", ")}.`,
  };
}

/** The bridge closed the WebSocket on purpose; its close reason names the rule. */
function refusal(detail, context) {
  const text = detail.toLowerCase();
  if (text.includes("read-only") || text.includes("read only")) {
    return {
      summary: `The bridge is read-only and refused the write: ${detail}.`,
      advice: "Writes need a bridge started without --read-only.",
    };
  }
  if (text.includes("token")) {
    return {
      summary: `The bridge refused the token: ${detail}.`,
      advice: "Enter a token listed in the bridge's --token-file.",
    };
  }
  if (text.includes("origin")) {
    return {
      summary: `The bridge refused this page's origin: ${detail}.`,
      advice: `Start the bridge with --allow-origin ${context.origin ?? "this page's origin"}.`,
    };
  }
  return {
    summary: `The bridge refused the request: ${detail}.`,
    advice: "The bridge's policy does not allow this command; see its --help for the flags that change it.",
  };
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
