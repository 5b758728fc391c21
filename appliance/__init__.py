"""presence-appliance: provision a Raspberry Pi as the private network and HTTPS proxy of Netatmo Presence cameras."""

__version__ = "0.1.0"
