"""How a backbone is fine-tuned: strategy plans, the LightningModule, its optimizer, the feature cache."""
