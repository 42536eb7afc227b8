#!/usr/bin/env node
// Entry point of the `safl` command: runs the compiled CLI (built by `npm ci` through the prepare script).
import("../dist/src/cli/main.js").then((m) => m.main(process.argv.slice(2))).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
