"""See docs/design.md: the layers of pipeline/."""
