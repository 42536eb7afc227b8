/**
 * @module cli/main
 * The `safl` command: dispatches subcommands and turns errors into one message and an exit code
 * (a SaflError's code picks the exit code; anything else is a bug and prints its stack).
 */
import { exitCodeFor, SaflError } from "../errors.js";
import { benchStep, benchStepHelp } from "./commands/bench-step.js";
import { finetune } from "./commands/finetune.js";
import { predict } from "./commands/predict.js";
import { pretrain } from "./commands/pretrain.js";
import { simulateCommand } from "./commands/simulate.js";
import { studyCommand } from "./commands/study.js";

const usage = `safl — federated fine-tuning of ViTs with LoRA adapters (SA-FedLoRA)

Usage: safl <command> [options]

Commands:
  simulate     run a federated simulation (the main job; SA-FedLoRA on the default backbone)
  study        run a reproduction study (methods x partitions x seeds) and write its report
  bench step   time a training/eval step of a preset ViT (images/s, GFLOP/s)
  pretrain     train a ViT from scratch on a source task (makes a backbone)
  finetune     centralized fine-tuning with lora, ffa-lora, adalora or all weights
  predict      logits of a HF ViT checkpoint on images from a safetensors file

Run "safl <command> --help" for the options of a command.`;

export async function main(argv: string[]): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
      console.log(usage);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === "bench") {
      const [sub, ...args] = rest;
      if (sub === "step") return await benchStep(args);
      console.error(sub === undefined || sub.startsWith("-") ? benchStepHelp : `safl bench: unknown benchmark "${sub}" (expected: step)`);
      return 2;
    }
    if (cmd === "predict") return await predict(rest);
    if (cmd === "pretrain") return await pretrain(rest);
    if (cmd === "finetune") return await finetune(rest);
    if (cmd === "simulate") return await simulateCommand(rest);
    if (cmd === "study") return await studyCommand(rest);
    console.error(`safl: unknown command "${cmd}"\n\n${usage}`);
    return 2;
  } catch (e) {
    if (e instanceof SaflError) {
      console.error(`safl: ${e.rawMessage}`);
      return exitCodeFor[e.code];
    }
    throw e;
  }
}
