"""RAG: knowledge bases, ingestion with incremental sync, hybrid retrieval, knowledge bots.

Filled by the RAG issue; it imports ``genai`` only.
"""
