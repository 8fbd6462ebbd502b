"""Celery workers: background removal and classification of submitted images."""
