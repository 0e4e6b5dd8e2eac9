"""Every Cypher statement lookgraph runs lives in the .cypher files of this folder."""
