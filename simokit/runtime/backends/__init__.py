"""Engine implementations; each imports its runtime library lazily."""
