"""Audit analysis: condition naming, result tables and report text, from judged answers."""
