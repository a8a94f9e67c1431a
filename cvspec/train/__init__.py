"""Training: the timm trainer, the ultralytics adapter, checkpoints and run folders."""
