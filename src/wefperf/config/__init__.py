"""Configuration: the settings' fields and rules, where their values come from (flags, environment, profile), help."""
