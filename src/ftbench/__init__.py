"""ftbench: compare fine-tuning strategies for pretrained vision models, side by side."""

__version__ = "0.1.0"
