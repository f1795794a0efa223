"""A run's lifecycle primitives: its folder and lock, resume, checkpoints, the result contract,
failures, secrets and atomic files."""
