/**
 * @module cli/command
 * What a `safl` command is: its name (words, so "bench step" is a subcommand of "bench"), a summary
 * line for the command list, a usage line, its flag spec and the function that runs it. The
 * dispatcher (cli/main) and the help text work from this record alone, so adding a command is one
 * entry in cli/commands/index.ts plus the file that defines it.
 */
import { type FlagSpec, type FlagValues, formatFlags, type GivenFlags, givenFlags, readFlags, resolveFlags, wrap } from "./args.js";

/** What a command's run function gets. */
export interface CommandInput<S extends FlagSpec> {
  /** The flags validated against the spec, with its defaults filled in. */
  readonly values: FlagValues<S>;
  /** The flags exactly as typed: for rules that depend on which flags were given and on other flags. */
  readonly given: GivenFlags;
  /** The arguments after the command name (e.g. to record the invocation). */
  readonly argv: readonly string[];
}

export interface Command<S extends FlagSpec = FlagSpec> {
  /** The words that select it, e.g. "finetune" or "bench step". */
  readonly name: string;
  /** One line for the command list and the help's title. */
  readonly summary: string;
  /** What follows "safl <name>" on the usage line; by default the required flags and "[options]". */
  readonly usage?: string;
  /** Text between the usage line and the options (what it does, what the defaults amount to). */
  readonly description?: string;
  /** Text after the options (what it writes). */
  readonly epilog?: string;
  readonly flags: S;
  run(input: CommandInput<S>): Promise<number>;
}

/** Declares a command (keeps the spec's literal type so `values` is typed). */
export function defineCommand<const S extends FlagSpec>(command: Command<S>): Command<S> {
  return command;
}

export function usageLine(command: Command): string {
  const generated = () =>
    [
      ...Object.entries(command.flags)
        .filter(([, d]) => d.type === "string" && d.required)
        .map(([n, d]) => `--${n} ${d.value ?? "<value>"}`),
      "[options]",
    ].join(" ");
  return `Usage: safl ${command.name} ${command.usage ?? generated()}`;
}

/** The text `safl <name> --help` prints. */
export function commandHelp(command: Command): string {
  return [
    `safl ${command.name} — ${command.summary}`,
    usageLine(command),
    ...(command.description ? [paragraphs(command.description)] : []),
    `Options:\n${formatFlags(command.flags)}`,
    ...(command.epilog ? [paragraphs(command.epilog)] : []),
  ].join("\n\n");
}

/** Re-wraps prose (paragraphs separated by blank lines) to the help's width. */
function paragraphs(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map((p) => wrap(p, 100).join("\n"))
    .join("\n\n");
}

/** Parses argv for the command and runs it; --help prints its help instead (exit 0). */
export async function runCommand(command: Command, argv: readonly string[]): Promise<number> {
  const raw = readFlags(argv, command.flags, command.name);
  if (raw["help"] === true) {
    console.log(commandHelp(command));
    return 0;
  }
  const values = resolveFlags(raw, command.flags, command.name);
  return command.run({ values, given: givenFlags(raw), argv });
}
