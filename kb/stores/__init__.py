"""Where the passages live: the interface retrieval asks (base.py), the local index directory (index_dir.py the
files, local.py the loaded store) and Milvus (milvus.py the reader, milvus_writer.py the writer), and the
questions attached to passages (handles.py). Knows nothing of ranking or answers."""
