"""Helpers shared by the test tiers (not tests): a test module imports from here, never from
another test module."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
