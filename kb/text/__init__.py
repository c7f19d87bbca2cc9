"""Text, the first step of the data's path: words (jieba), numerals, law names, what a passage contains, BM25
over words, and the personal details a question may carry. Imports nothing from the steps after it."""
