"""Who may do what: allowlists and the audit provenance of every change."""
