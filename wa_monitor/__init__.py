"""WA Monitor: drop submissions from WhatsApp project groups to the QA reviewers' dashboard."""

__version__ = "0.1.0"
