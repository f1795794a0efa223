"""The tuned comparison: every strategy searched with the same budget (Optuna), then retrained."""
