"""Evaluation: metrics, quality gates, export and the model card."""
