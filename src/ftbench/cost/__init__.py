"""What a run costs: time, images, FLOPs and memory, measured (the meter) and estimated (the preview)."""
