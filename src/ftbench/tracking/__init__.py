"""Where a run is watched: loggers (CSV, W&B) and progress lines."""
