/**
 * @module cli/commands/token
 * `safl token create | revoke | list`: manages the per-client bearer tokens of `safl server`
 * (net/tokens.ts). The token file keeps only hashes, so `create` is the one moment a token is
 * visible: it goes alone to stdout (so `TOKEN=$(safl token create ...)` captures exactly it) and the
 * reminder that it cannot be shown again goes to stderr.
 */
import { createToken, listTokens, revokeToken } from "../../net/tokens.js";
import { defineFlags, flag } from "../args.js";
import { type CommandInput, defineCommand } from "../command.js";
import { JSON_OUTPUT } from "../flags.js";

const TOKENS = flag({
  type: "string",
  value: "<file>",
  required: true,
  description: "the token file (JSON; per client the SHA-256 of its token, created and revoked times; written with mode 0600)",
});
const ID = flag({ type: "string", value: "<client>", required: true, description: "client id: 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'" });

const createFlags = defineFlags({
  tokens: { ...TOKENS, description: `${TOKENS.description}; created if missing` },
  id: ID,
  rotate: { type: "boolean", description: "replace the client's active token (the old one stops working at once)" },
  json: { ...JSON_OUTPUT, description: "print {id, token, tokens} as JSON" },
});

export const tokenCreateCommand = defineCommand({
  name: "token create",
  summary: "create a client's bearer token (printed once, only its hash is stored)",
  usage: "--tokens <file> --id <client> [--rotate] [--json]",
  description:
    "Prints a new token safl_<id>_<secret> for the client and records its SHA-256 in the token file. The token itself is stored nowhere: hand it to the client now. An id that already has an active token is refused unless --rotate is given; an id whose token was revoked gets a new one.",
  flags: createFlags,
  run: create,
});

async function create({ values: v }: CommandInput<typeof createFlags>): Promise<number> {
  const token = await createToken(v.tokens, v.id, { rotate: v.rotate });
  if (v.json) console.log(JSON.stringify({ id: v.id, token, tokens: v.tokens }));
  else console.log(token);
  process.stderr.write(
    `safl token: ${v.rotate ? "new token" : "token"} for client ${v.id} recorded in ${v.tokens}; the token is not stored (only its hash) and cannot be shown again\n`,
  );
  return 0;
}

const revokeFlags = defineFlags({ tokens: TOKENS, id: ID });

export const tokenRevokeCommand = defineCommand({
  name: "token revoke",
  summary: "revoke a client's bearer token",
  usage: "--tokens <file> --id <client>",
  description:
    "Marks the client's token revoked in the token file. A running safl server re-reads the file when it changes, so the token is refused from the next request on. Revoking an already revoked token changes nothing.",
  flags: revokeFlags,
  run: revoke,
});

async function revoke({ values: v }: CommandInput<typeof revokeFlags>): Promise<number> {
  const r = await revokeToken(v.tokens, v.id);
  console.log(r.already ? `client ${r.id}: token already revoked at ${r.revoked}` : `client ${r.id}: token revoked at ${r.revoked} (created ${r.created})`);
  return 0;
}

const listFlags = defineFlags({ tokens: TOKENS, json: { ...JSON_OUTPUT, description: "print [{id, created, revoked?}] as JSON" } });

export const tokenListCommand = defineCommand({
  name: "token list",
  summary: "list the clients in a token file (ids and times, no hashes)",
  usage: "--tokens <file> [--json]",
  flags: listFlags,
  run: list,
});

async function list({ values: v }: CommandInput<typeof listFlags>): Promise<number> {
  const tokens = await listTokens(v.tokens);
  if (v.json) {
    console.log(JSON.stringify(tokens));
    return 0;
  }
  if (tokens.length === 0) {
    console.log(`no clients in ${v.tokens}`);
    return 0;
  }
  const rows = [["id", "status", "created", "revoked"], ...tokens.map((t) => [t.id, t.revoked ? "revoked" : "active", t.created, t.revoked ?? "-"])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "));
  return 0;
}
