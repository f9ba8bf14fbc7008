"""Chart builders, Jinja templates and the static-site writer. Reads the warehouse only."""
