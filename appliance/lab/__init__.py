"""The lab: a booted Debian "Pi" in network namespaces with emulated cameras, to try the appliance."""
