"""Tools beside the pipeline: the benchmark and the input-pipeline fidelity measurement."""
