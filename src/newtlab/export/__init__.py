"""The lab for other tools: drawings (graph), SSH config, inventories."""
