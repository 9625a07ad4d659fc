"""The campus back office: people and groups, card bindings, the doors' allow list, events."""
