"""The graph: its model, the stores that hold it, and the traversals over it."""
