"""The reference agent: perceive -> plan -> act -> verify, every stage an event."""
