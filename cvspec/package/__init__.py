"""Container images of a project: what they are (images), and building them (stage)."""
