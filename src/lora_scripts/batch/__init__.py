"""The catalogue job: items x prompt template -> images + index.csv; resumable, sharded (accelerate)."""
