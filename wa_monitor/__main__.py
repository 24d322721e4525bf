"""`python -m wa_monitor`: the same as the `wa-monitor` command."""

from wa_monitor.launch import main

main()
