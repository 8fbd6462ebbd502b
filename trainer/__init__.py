"""Training, evaluation and (later) the trainer service."""
