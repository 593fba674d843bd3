"""The researcher's dashboard: selectors over the ORM, figures, staff-only views."""
