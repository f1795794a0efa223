"""The backbone: timm models, where their weights come from, layer groups, LoRA adapters."""
