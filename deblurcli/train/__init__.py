"""Training: datasets, losses, adversarial training, presets and the training loop."""
