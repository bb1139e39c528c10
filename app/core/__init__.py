"""The leaf layer: small building blocks every other package may use.

Nothing in ``app.core`` imports anything else of the app (only the standard library), so any package can
depend on it without creating an import cycle.
"""
