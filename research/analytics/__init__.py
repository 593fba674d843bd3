"""Pure statistics for the researcher's dashboard (numpy only, no Django in the math)."""
