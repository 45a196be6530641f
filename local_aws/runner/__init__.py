"""`tickstream consume`: the template's event source mappings, run locally with Lambda's semantics."""
