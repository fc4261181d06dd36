"""Low-level operators used by the model (multi-scale deformable attention)."""
