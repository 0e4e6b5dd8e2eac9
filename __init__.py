"""lookgraph: graph-native retail recommendations that complete the look across categories."""

__version__ = "0.1.0"
