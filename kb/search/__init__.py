"""A question → ranked passages: what the question names (query.py), everyday words → legal terms (expand.py),
fusing dense and lexical scores (fuse.py), the learnt ranking (rank.py, handle_stage.py), retrieval itself
(retrieve.py) and follow-up reading in a conversation (conversation.py)."""
