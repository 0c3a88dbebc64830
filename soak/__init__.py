"""make soak: mixed traffic against a real daemon for a long while; does anything leak?"""
