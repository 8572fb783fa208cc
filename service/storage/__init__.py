"""Storage: the database the service keeps clients, sessions, risks, keys and audit in."""
