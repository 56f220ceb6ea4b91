"""A generator of listings in the exact format of the challenge files (the default data)."""
