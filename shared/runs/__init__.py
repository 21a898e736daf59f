"""The run model: PipelineRun → TaskRuns → pods → step containers, its watch, lookup and status."""
