"""The reporting stage: figures, tables and the paper's macros, from result files."""
