"""Portal: a multi-tenant low-code business portal."""

PLATFORM_VERSION = "1.0.0"
