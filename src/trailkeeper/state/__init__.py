"""The persistent state of a data directory: its versioned schema and how it is opened."""
