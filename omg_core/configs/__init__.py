"""Data files of the OMG core (open_clip model configurations); kept as a package so they ship with the wheel."""
