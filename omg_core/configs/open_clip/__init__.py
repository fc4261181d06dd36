"""open_clip model configurations (JSON) registered by omg_core.model.backbone."""
