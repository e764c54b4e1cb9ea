"""Sample analyses over the warehouse (read-only). See docs/analysis.md."""
