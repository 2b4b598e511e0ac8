"""The training stage: models, the epoch engine, feature cache, checkpoints and one run's driver."""
