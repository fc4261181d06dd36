"""Dataset readers and writers for every task format, augmentation, and the procedural shapes world."""
