"""Meaning as vectors: the sentence-transformers model (built from registry packages, kb/embedding/model/) and
the embedder that ingest and search share. Imports only kb/text and the base modules."""
