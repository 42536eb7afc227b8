/**
 * @module cli/main
 * The `safl` command: finds the command named by the leading words of argv in the command table
 * (cli/commands/index.ts), answers `safl --help`, `safl help <cmd>` and unknown names from that
 * table, and turns errors into one message and an exit code (a SaflError's code picks the exit
 * code; anything else is a bug and prints its stack).
 */
import { exitCodeFor, SaflError } from "../errors.js";
import { type Command, commandHelp, runCommand } from "./command.js";
import { COMMANDS } from "./commands/index.js";

const TITLE = "safl — federated fine-tuning of ViTs with LoRA adapters (SA-FedLoRA)";

/** Command lines "  name   summary" with the summaries aligned. */
function commandList(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 3;
  return commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n");
}

export function usage(commands: readonly Command[] = COMMANDS): string {
  return `${TITLE}

Usage: safl <command> [options]

Commands:
${commandList(commands)}

Run "safl <command> --help" or "safl help <command>" for the options of a command.`;
}

/** The help of a command group such as "bench": its subcommands. */
function groupHelp(group: string, commands: readonly Command[]): string {
  return `Usage: safl ${group} <subcommand> [options]

Subcommands:
${commandList(commands)}

Run "safl ${group} <subcommand> --help" for its options.`;
}

type Lookup =
  | { readonly kind: "command"; readonly command: Command; readonly rest: string[] }
  | { readonly kind: "group"; readonly group: string; readonly members: readonly Command[]; readonly next: string | undefined; readonly rest: string[] }
  | { readonly kind: "unknown"; readonly name: string };

/** The command whose name is the longest run of leading words; else the group the first word names. */
export function findCommand(words: readonly string[], commands: readonly Command[] = COMMANDS): Lookup {
  let best: Command | undefined;
  let bestLen = 0;
  for (const c of commands) {
    const name = c.name.split(" ");
    if (name.length > bestLen && name.every((w, i) => words[i] === w)) {
      best = c;
      bestLen = name.length;
    }
  }
  if (best) return { kind: "command", command: best, rest: words.slice(bestLen) };
  const first = words[0] ?? "";
  const members = commands.filter((c) => c.name.startsWith(`${first} `));
  if (members.length > 0) return { kind: "group", group: first, members, next: words[1], rest: words.slice(1) };
  return { kind: "unknown", name: first };
}

/** The first words of the commands ("bench" once for all its subcommands). */
function validNames(commands: readonly Command[]): string {
  return [...new Set(commands.map((c) => c.name.split(" ")[0]!))].join(", ");
}

/** The subcommand words of a group's members ("step" for "bench step"). */
function subNames(members: readonly Command[]): string {
  return members.map((c) => c.name.split(" ").slice(1).join(" ")).join(", ");
}

/** What `safl help <words>` prints; unknown names are an error (exit 2) like running them. */
function help(words: readonly string[]): number {
  if (words.length === 0) {
    console.log(usage());
    return 0;
  }
  const found = findCommand(words);
  if (found.kind === "command" && found.rest.length === 0) console.log(commandHelp(found.command));
  else if (found.kind === "group" && found.rest.length === 0) console.log(groupHelp(found.group, found.members));
  else return unknown(found.kind === "command" ? [found.command.name, ...found.rest].join(" ") : words.join(" "), found);
  return 0;
}

function unknown(typed: string, found: Lookup): number {
  if (found.kind === "group") {
    console.error(`safl ${found.group}: unknown subcommand "${found.next}" (expected one of: ${subNames(found.members)})\n\n${groupHelp(found.group, found.members)}`);
  } else console.error(`safl: unknown command "${typed}" (expected one of: ${validNames(COMMANDS)})\n\n${usage()}`);
  return 2;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "--help" || first === "-h") {
      console.log(usage());
      return first === undefined ? 2 : 0;
    }
    if (first === "help") return help(rest);
    const found = findCommand(argv);
    if (found.kind === "command") return await runCommand(found.command, found.rest);
    if (found.kind === "group") {
      // "safl bench --help" asks for the list; "safl bench" alone is a usage error, like "safl" alone.
      if (found.next === "--help" || found.next === "-h") {
        console.log(groupHelp(found.group, found.members));
        return 0;
      }
      if (found.next === undefined || found.next.startsWith("-")) {
        console.error(`safl ${found.group}: which one? (expected one of: ${subNames(found.members)})\n\n${groupHelp(found.group, found.members)}`);
        return 2;
      }
    }
    return unknown(first, found);
  } catch (e) {
    if (e instanceof SaflError) {
      console.error(`safl: ${e.rawMessage}`);
      return exitCodeFor[e.code];
    }
    throw e;
  }
}
