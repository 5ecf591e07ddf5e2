"""Who may say what: signed messages and ACLs."""
