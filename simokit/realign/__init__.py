"""Re-alignment of a merged encoder to each frozen task head: least squares folded into the heads,
head fine-tuning and LoRA, each registered under its `RealignMode` (see `registry`)."""
