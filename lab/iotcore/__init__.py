"""AWS IoT Core stand-in for the lab."""
