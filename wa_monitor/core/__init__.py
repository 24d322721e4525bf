"""The pure centre: drop detection, review planning, the steps, the projects file, the
settings and the project's errors."""
