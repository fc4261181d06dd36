"""Evaluation harness: every task metric, equal to the official evaluators, with fused kernels."""
