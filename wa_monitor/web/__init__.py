"""The reviewers' dashboard and the JSON API."""
