"""`python -m wa_monitor`: the same as the `wa-monitor` command."""

from wa_monitor.cli.launch import main

main()
