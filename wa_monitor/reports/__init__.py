"""Reports: a day's figures built as a file (XLSX, CSV, JSON) and delivered once to each
destination of the projects file's `reports:`, each delivery recorded in report_deliveries."""

import logging

# The service's and the dashboard's log handlers get these lines; a command that prints
# its own outcome lines (`wa-monitor report send`) does not see them twice.
logging.getLogger("wa_monitor.reports").addHandler(logging.NullHandler())
