"""EventBridge-style rules: event patterns that select audit events for near-real-time routing."""
