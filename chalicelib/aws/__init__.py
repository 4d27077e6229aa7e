"""The AWS conversation: clients and time budgets, ECS calls, the raw-JSON fidelity hooks, parallel calls."""
