"""The demo task: prompts, pre-sampled comparisons from the embedded model, demo logins."""
