"""Named vocabularies (JSON) read by omg_core.model.vocabulary."""
