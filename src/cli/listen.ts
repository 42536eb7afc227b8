/**
 * @module cli/listen
 * host:port flags (`safl server --listen`, `safl simulate --ui-listen`), parsed one way with one
 * error message, in a module of its own so the commands need not import each other.
 */
import { argError } from "../errors.js";

/** host:port (IPv6 in brackets); `flag` names the flag in the error. */
export function parseListen(text: string, flag = "listen"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) throw argError(`--${flag} ${JSON.stringify(text)}: expected host:port, e.g. 127.0.0.1:7443 or [::1]:7443`);
  return { host: (m[1] ?? m[2])!, port };
}
