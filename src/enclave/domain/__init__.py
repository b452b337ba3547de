"""Domain types every layer may use: the capacity model the broker decides on and the backends report (nodes,
startds, demand, actions, the Backend contract)."""
