"""Use cases shared by both surfaces: plain async functions taking a typed Context."""
