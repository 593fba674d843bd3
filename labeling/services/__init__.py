"""Writes. Every service is keyword-only, typed and atomic; reads live in labeling.selectors."""
