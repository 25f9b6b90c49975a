"""Local HTTP servers that speak the protocols of services unreachable from tests."""
