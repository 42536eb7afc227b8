/**
 * @module sim
 * Federated simulation on one machine (Node-only: it loads the backbone and datasets from disk and
 * may run clients in worker threads): the run config and its overrides, the simulation itself, the
 * in-memory and worker-pool grids of virtual clients, run reports (tables and SVG plots), and
 * reproduction studies (plans expanded into cells, and their report).
 */

// The run config: one validated object for a whole simulation.
export { type RunConfig, type RunConfigInput, applyOverrides, parseRunConfig, runConfigSchema } from "./config.js";

// Running a simulation.
export {
  type SimulationHooks,
  type SimulationResult,
  type SimulationSetup,
  localGrid,
  localTraining,
  prepareSimulation,
  resolveBackboneDir,
  simulate,
  summarize,
  trainSubset,
} from "./simulate.js";

// Grids of virtual clients: sequential in this thread, or a pool of worker threads.
export { InMemoryGrid, SharedBaseStore, type VirtualClient } from "./memory-grid.js";
export { WorkerPoolGrid, workerGridFactory } from "./worker-grid.js";

// Reports of a run: per-round lines, the summary table, SVG plots.
export { formatBytes, formatCount, formatRoundLine, formatSummaryTable, partitionPlot, runPlots, runPlotsMulti } from "./report.js";

// Studies: methods x partitions x seeds (+ sweeps), and their generated report.
export { type StudyCell, type StudyPlan, expandPlan, parseStudyPlan, resultKey, studyPlanSchema } from "./study.js";
export { type CellResult, type StudyReport, buildStudyReport, mergeAnalysis } from "./study-report.js";
