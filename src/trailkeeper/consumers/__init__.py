"""Consumers of acknowledged events: everything that reads the spool after an append.

A consumer has a name, a durable offset (the first spool seq it still needs) and a step. The
registry drives them all the same way: `pump` in the foreground, the background threads, and
spool trimming (the spool keeps every record some consumer still needs: trim = the minimum
offset). The history indexer and the trail workers are consumers with offsets of their own
(the history database, the trail state); new consumers (forwarding, rules, the Merkle log) are
`SpoolConsumer`s: a handler over batches of records, offsets in the state database.
"""
