"""GNN embeddings: export from the store, train, write vectors back."""
