/**
 * @module cli/commands
 * The command table: every `safl` command, in the order `safl --help` lists them. A new command is
 * its file under commands/ (exporting a `defineCommand(...)`) plus one entry here; dispatch, the
 * command list, `safl help <cmd>` and `safl <cmd> --help` all come from this table.
 */
import type { Command } from "../command.js";
import { benchStepCommand } from "./bench-step.js";
import { clientCommand } from "./client.js";
import { finetuneCommand } from "./finetune.js";
import { predictCommand } from "./predict.js";
import { pretrainCommand } from "./pretrain.js";
import { serverCommand } from "./server.js";
import { simulateCommand } from "./simulate.js";
import { studyCommand } from "./study.js";
import { tokenCreateCommand, tokenListCommand, tokenRevokeCommand } from "./token.js";

export const COMMANDS: readonly Command[] = [
  simulateCommand,
  studyCommand,
  benchStepCommand,
  pretrainCommand,
  finetuneCommand,
  predictCommand,
  serverCommand,
  clientCommand,
  tokenCreateCommand,
  tokenRevokeCommand,
  tokenListCommand,
];
