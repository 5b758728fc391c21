"""`python -m appliance.cli`: the same command as `presence-appliance`."""

from appliance.cli import main

main()
