# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host -> thing name filter (iotfleet.aws.thing_name): the one rule of _errors, through
Jinja as a play uses it, and names the IoT Core stand-in's control plane accepts (``moto``)."""

import json
import os
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.iotfleet.aws.plugins.filter.thing_name import FilterModule
from ansible_collections.iotfleet.aws.plugins.filter.thing_name import thing_name
from ansible_collections.iotfleet.aws.plugins.module_utils._errors import validate_thing_name

HOSTS = ["pi-kitchen.example.com", "pi 1", "pi_2:a", "ÄÖ-pi", "192.168.1.20", "x" * 200]


def test_registered_as_filter():
    assert FilterModule().filters()["thing_name"] is thing_name


@pytest.mark.parametrize("host, name", [
    ("pi-kitchen.example.com", "pi-kitchen-example-com"),
    ("pi 1", "pi-1"),
    ("pi_2:a", "pi_2:a"),
    ("ÄÖ-pi", "---pi"),
    ("192.168.1.20", "192-168-1-20"),
])
def test_mapping(host, name):
    assert thing_name(host) == name


@pytest.mark.parametrize("host", HOSTS)
def test_every_result_is_a_valid_thing_name(host):
    assert validate_thing_name(thing_name(host)) == thing_name(host)
    assert validate_thing_name(thing_name(host, "_"))


def test_long_names_are_cut_to_128():
    assert thing_name("a" * 200) == "a" * 128


def test_replacement():
    assert thing_name("pi.kitchen", "_") == "pi_kitchen"
    assert thing_name("pi.kitchen", "") == "pikitchen"
    with pytest.raises(AnsibleFilterError, match="replacement '.' is not allowed"):
        thing_name("pi.kitchen", ".")


@pytest.mark.parametrize("bad", ["", None, 42, ["pi"]])
def test_refuses_what_is_not_a_host_name(bad):
    with pytest.raises(AnsibleFilterError, match="expects a non-empty host name"):
        thing_name(bad)


def test_through_jinja_as_a_play_uses_it():
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    expression = "{{ [inventory_hostname | iotfleet.aws.thing_name, inventory_hostname | iotfleet.aws.thing_name('_')] }}"
    proc = subprocess.run(
        [ansible, "all", "-o", "-i", "pi-kitchen.example.com,", "-c", "local", "-m", "ansible.builtin.debug",
         "-a", "msg=" + expression],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split(" => ", 1)[1])
    assert result["msg"] == ["pi-kitchen-example-com", "pi-kitchen_example_com"]


def test_the_control_plane_accepts_every_result(boto3_iot):
    for host in HOSTS:
        name = thing_name(host)
        assert boto3_iot.create_thing(thingName=name)["thingName"] == name
    with pytest.raises(boto3_iot.exceptions.InvalidRequestException):
        boto3_iot.create_thing(thingName="pi-kitchen.example.com")  # the name the filter exists for


def test_with_hostvars_the_fleet_rule():
    """iotfleet_thing_name as given (iot_fleet checks it), else the mapped inventory name: the one rule
    the roles, the report and iotfleet.aws.fleet_devices read."""
    hostvars = {"pi-kitchen.lan": {}, "garage": {"iotfleet_thing_name": "garage-01"}, "odd": {"iotfleet_thing_name": None}}
    assert thing_name("pi-kitchen.lan", hostvars=hostvars) == "pi-kitchen-lan"
    assert thing_name("pi-kitchen.lan", "_", hostvars=hostvars) == "pi-kitchen_lan"
    assert thing_name("garage", hostvars=hostvars) == "garage-01"
    assert thing_name("odd", hostvars=hostvars) is None   # None is a value: iot_fleet refuses it by host
    with pytest.raises(AnsibleFilterError, match="'pi-9' is not a host of the inventory"):
        thing_name("pi-9", hostvars=hostvars)


def test_with_hostvars_through_a_play_templated_names(tmp_path):
    (tmp_path / "pis.ini").write_text(
        "[pis]\npi-kitchen.lan\npi-garage.lan iotfleet_thing_name=\"{{ site }}-garage\"\n[pis:vars]\nsite=lab\n")
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    expression = ("{{ [inventory_hostname | iotfleet.aws.thing_name(hostvars=hostvars),"
                  " groups['pis'] | map('iotfleet.aws.thing_name', hostvars=hostvars) | list] }}")
    proc = subprocess.run(
        [ansible, "pi-kitchen.lan", "-o", "-i", str(tmp_path / "pis.ini"), "-c", "local", "-m", "ansible.builtin.debug",
         "-a", "msg=" + expression, "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split(" => ", 1)[1])
    assert result["msg"] == ["pi-kitchen-lan", ["pi-kitchen-lan", "lab-garage"]]
