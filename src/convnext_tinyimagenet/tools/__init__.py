"""Tools beside the pipeline: the input-pipeline fidelity measurement."""
