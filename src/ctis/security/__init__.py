"""Security: field encryption, passwords, permissions, sessions, audit."""
