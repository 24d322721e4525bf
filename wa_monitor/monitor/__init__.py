"""The drop monitor: the scan, the `run` service, metrics, health, the projects file at run time."""
