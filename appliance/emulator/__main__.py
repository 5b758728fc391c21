"""`python -m appliance.emulator`: the same as `presence-appliance emulate`."""

from appliance.cli.emulate_cmd import emulate

emulate(prog_name="python -m appliance.emulator")
