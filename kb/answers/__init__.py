"""Ranked passages → what the asker reads: whether they answer (answerable.py, evidence.py), what to quote
(quote.py), the answer (answer.py, optionally generate.py), other candidates (related.py), the notice and its
help lines (notice.py, safety.py), and the one object that runs a question from reading to answer (asker.py)."""
