"""What the fleet tests share: the name of the device policy the ``fleet_account`` fixture
(tests/unit/plugins/module_utils/conftest.py) makes."""

POLICY = "fleet-device"
