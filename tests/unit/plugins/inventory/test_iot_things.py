# -*- coding: utf-8 -*-
# Copyright: Contributors to the iotfleet.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin iotfleet.aws.iot_things.

The real plugin is run as a user runs it: ``ansible-inventory -i <dir>/lab.iot_things.yml --list`` in a
subprocess, against the IoT Core stand-in's control plane (``moto`` fixture) given by the environment
(AWS_ENDPOINT_URL, credentials, AWS_DEFAULT_REGION) as the lab's ``lab.py env`` gives it. The registry
is filled through the stand-in, which makes AWS's checks: the device certificates are issued by a fleet CA
registered with it. The pure helpers are tested with plain dicts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

from ansible_collections.iotfleet.aws.plugins.inventory import iot_things
from ansible_collections.iotfleet.aws.plugins.module_utils._client import IoTAWSError

ANSIBLE_INVENTORY = Path(sys.executable).with_name("ansible-inventory")
PLUGIN = "iotfleet.aws.iot_things"


# ---------------------------------------------------------------------------------------------
# running the plugin


class Inventory:
    """The JSON of ``ansible-inventory --list``, with helpers."""

    def __init__(self, data, stderr):
        self.data, self.stderr = data, stderr
        self.hostvars = data.get("_meta", {}).get("hostvars", {})

    @property
    def hosts(self):
        return sorted(self.hostvars)

    def group(self, name):
        return self.data.get(name)

    def members(self, name):
        """The hosts directly in group ``name`` (sorted); None when the group does not exist."""
        group = self.data.get(name)
        return None if group is None else sorted(group.get("hosts", []))

    def children(self, name):
        return sorted((self.data.get(name) or {}).get("children", []))


def inventory_env(moto, tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        PATH=f"{ANSIBLE_INVENTORY.parent}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",  # a source the plugin refuses fails the command
        AWS_ENDPOINT_URL=moto.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run(moto, tmp_path, config, *args, name="lab.iot_things.yml", env=None, expect_ok=True):
    """``ansible-inventory -i <tmp>/<name> --list [args]``; the parsed Inventory (or the failed process)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(config)) if isinstance(config, dict) else config)
    proc = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list", *args],
        check=False,
        cwd=tmp_path,
        env=inventory_env(moto, tmp_path, **(env or {})),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if not expect_ok:
        assert proc.returncode != 0, proc.stdout
        return proc
    assert proc.returncode == 0, proc.stderr
    return Inventory(json.loads(proc.stdout, object_hook=_trusted), proc.stderr)


def _trusted(obj):
    # ansible-inventory marks the strings that came from outside (here: AWS) as unsafe, not to be templated
    return obj["__ansible_unsafe"] if set(obj) == {"__ansible_unsafe"} else obj


def config(**options):
    return dict(plugin=PLUGIN, **options)


# ---------------------------------------------------------------------------------------------
# the registry: a small fleet as the collection provisions it, plus what operators add


@pytest.fixture
def fleet(moto):
    """Things, a thing type, thing groups (site-a > kitchen-room; pis) and certificates.

    pi-1   pi-zero, room=kitchen host=10.0.0.1 port=2201 hostname=kitchen-pi, groups kitchen-room + pis,
           certificates: an old INACTIVE one and a newer ACTIVE one (a rotation in progress)
    pi-2   pi-zero, room=garage host=10.0.0.2, group pis, one INACTIVE certificate
    sensor-3  no type, room=kitchen, no group, no certificate
    """
    iot = moto.iot
    iot.create_thing_type(thingTypeName="pi-zero")
    iot.create_thing_group(thingGroupName="site-a")
    iot.create_thing_group(thingGroupName="kitchen-room", parentGroupName="site-a")
    iot.create_thing_group(thingGroupName="pis")
    things = {
        "pi-1": ("pi-zero", {"room": "kitchen", "host": "10.0.0.1", "port": "2201", "hostname": "kitchen-pi"}),
        "pi-2": ("pi-zero", {"room": "garage", "host": "10.0.0.2"}),
        "sensor-3": (None, {"room": "kitchen"}),
    }
    arns = {}
    for name, (thing_type, attributes) in things.items():
        kwargs = dict(thingName=name, attributePayload={"attributes": attributes})
        if thing_type:
            kwargs["thingTypeName"] = thing_type
        arns[name] = iot.create_thing(**kwargs)["thingArn"]
    for group, name in (("kitchen-room", "pi-1"), ("pis", "pi-1"), ("pis", "pi-2")):
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=name)

    ca = moto.register_ca()
    certificates = {}
    for name, cn, status in (("pi-1", "pi-1", "INACTIVE"), ("pi-1", "pi-1", "ACTIVE"), ("pi-2", "pi-2", "INACTIVE")):
        device = moto.make_device(ca, name, status=status, thing=False, cn=cn)
        iot.attach_thing_principal(thingName=name, principal=device.arn)
        certificates.setdefault(name, []).append(device)
    return dict(arns=arns, ca=ca, certificates=certificates)


# ---------------------------------------------------------------------------------------------
# hosts and host variables


def test_hosts_and_hostvars(moto, tmp_path, fleet):
    inv = run(moto, tmp_path, config())
    assert inv.hosts == ["pi-1", "pi-2", "sensor-3"]

    old, new = fleet["certificates"]["pi-1"]
    pi1 = inv.hostvars["pi-1"]
    assert pi1["iot_thing_name"] == "pi-1"
    assert pi1["iotfleet_thing_name"] == "pi-1"
    assert pi1["iot_thing_arn"] == fleet["arns"]["pi-1"]
    assert pi1["iot_thing_type"] == "pi-zero"
    assert pi1["iot_region"] == "us-east-1"
    assert pi1["iot_attributes"] == {"room": "kitchen", "host": "10.0.0.1", "port": "2201", "hostname": "kitchen-pi"}
    assert pi1["iot_thing_groups"] == ["kitchen-room", "pis"]
    # the live identity: the ACTIVE certificate, listed first; the retired one is still shown
    assert pi1["iot_certificate_id"] == new.id
    assert pi1["iot_certificate_status"] == "ACTIVE"
    assert [(c["certificate_id"], c["status"]) for c in pi1["iot_certificates"]] == [
        (new.id, "ACTIVE"), (old.id, "INACTIVE")]
    entry = pi1["iot_certificates"][0]
    assert entry["certificate_arn"] == new.arn
    assert entry["ca_certificate_id"] == fleet["ca"].id
    assert entry["creation_date"] and entry["not_after"]
    assert not any("pem" in key for key in entry)
    assert "ansible_host" not in pi1  # no ansible_host_attribute: Ansible connects to the host name

    pi2 = inv.hostvars["pi-2"]
    only = fleet["certificates"]["pi-2"][0]
    assert (pi2["iot_certificate_id"], pi2["iot_certificate_status"]) == (only.id, "INACTIVE")

    sensor = inv.hostvars["sensor-3"]
    assert sensor["iot_thing_type"] is None
    assert sensor["iot_thing_groups"] == []
    assert sensor["iot_certificates"] == []
    assert sensor["iot_certificate_id"] is None and sensor["iot_certificate_status"] is None


def test_groups_from_thing_groups_and_thing_types(moto, tmp_path, fleet):
    inv = run(moto, tmp_path, config())
    # names sanitised: "-" is not valid in a group name
    assert inv.members("thing_group_kitchen_room") == ["pi-1"]
    assert inv.members("thing_group_pis") == ["pi-1", "pi-2"]
    assert inv.members("thing_type_pi_zero") == ["pi-1", "pi-2"]
    # the thing group hierarchy: site-a holds no thing directly, kitchen-room is its child
    assert inv.children("thing_group_site_a") == ["thing_group_kitchen_room"]
    assert inv.members("thing_group_site_a") == []
    assert "sensor-3" in inv.members("ungrouped")

    # prefix "": the thing group "pis" is the Ansible group iotfleet.aws.provision runs on
    inv = run(moto, tmp_path, config(thing_group_prefix="", thing_type_prefix="type_"))
    assert inv.members("pis") == ["pi-1", "pi-2"]
    assert inv.children("site_a") == ["kitchen_room"]
    assert inv.members("type_pi_zero") == ["pi-1", "pi-2"]

    inv = run(moto, tmp_path, config(group_by_thing_groups=False, group_by_thing_type=False))
    assert not [g for g in inv.data if g.startswith(("thing_group_", "thing_type_"))]
    assert inv.hostvars["pi-1"]["iot_thing_groups"] == ["kitchen-room", "pis"]  # still read


def test_include_options_off(moto, tmp_path, fleet):
    inv = run(moto, tmp_path, config(include_certificates=False, include_thing_groups=False))
    assert inv.hosts == ["pi-1", "pi-2", "sensor-3"]
    for hostvars in inv.hostvars.values():
        assert not set(hostvars) & {"iot_certificates", "iot_certificate_id", "iot_certificate_status",
                                    "iot_thing_groups"}
    assert not [g for g in inv.data if g.startswith("thing_group_")]
    assert inv.members("thing_type_pi_zero") == ["pi-1", "pi-2"]  # the type comes with ListThings


def test_hostname_and_ansible_host_attributes(moto, tmp_path, fleet):
    inv = run(moto, tmp_path, config(hostname_attribute="hostname", ansible_host_attribute="host"))
    assert inv.hosts == ["kitchen-pi", "pi-2", "sensor-3"]
    assert inv.hostvars["kitchen-pi"]["iotfleet_thing_name"] == "pi-1"  # provision.yml maps it back
    assert inv.hostvars["kitchen-pi"]["ansible_host"] == "10.0.0.1"
    assert inv.hostvars["pi-2"]["ansible_host"] == "10.0.0.2"
    assert "ansible_host" not in inv.hostvars["sensor-3"]
    assert inv.members("thing_group_pis") == ["kitchen-pi", "pi-2"]


def test_duplicate_host_names_fall_back_to_thing_names(moto, tmp_path, fleet):
    # pi-2 claims pi-1's hostname; sensor-3 claims the name of the thing pi-2
    moto.iot.update_thing(thingName="pi-2", attributePayload={"attributes": {"hostname": "kitchen-pi"}, "merge": True})
    moto.iot.update_thing(thingName="sensor-3", attributePayload={"attributes": {"hostname": "pi-2"}, "merge": True})
    inv = run(moto, tmp_path, config(hostname_attribute="hostname"))
    assert inv.hosts == ["pi-1", "pi-2", "sensor-3"]
    assert {h: v["iotfleet_thing_name"] for h, v in inv.hostvars.items()} == {
        "pi-1": "pi-1", "pi-2": "pi-2", "sensor-3": "sensor-3"}
    warnings = " ".join(inv.stderr.split())
    assert "host name 'kitchen-pi' from attribute 'hostname' is not unique" in warnings
    assert "Thing 'sensor-3': host name 'pi-2'" in warnings


# ---------------------------------------------------------------------------------------------
# constructed: compose, groups, keyed_groups, strict


def test_compose_groups_and_keyed_groups(moto, tmp_path, fleet):
    inv = run(moto, tmp_path, config(
        ansible_host_attribute="host",
        compose={
            "ansible_port": "iot_attributes.port | default(22) | int",
            "ansible_user": "'pi'",
            "site": "iot_thing_groups | select('match', 'kitchen') | length > 0",
        },
        groups={"pis": True, "needs_identity": "iot_certificate_status != 'ACTIVE'"},
        keyed_groups=[
            {"key": "iot_attributes.room", "prefix": "room"},
            {"key": "iot_thing_type", "prefix": "model", "default_value": "unknown"},
        ],
    ))
    pi1 = inv.hostvars["pi-1"]
    assert (pi1["ansible_host"], pi1["ansible_port"], pi1["ansible_user"]) == ("10.0.0.1", 2201, "pi")
    assert pi1["site"] is True
    assert inv.hostvars["pi-2"]["ansible_port"] == 22
    assert inv.members("pis") == ["pi-1", "pi-2", "sensor-3"]
    assert inv.members("needs_identity") == ["pi-2", "sensor-3"]
    assert inv.members("room_kitchen") == ["pi-1", "sensor-3"]
    assert inv.members("room_garage") == ["pi-2"]
    assert inv.members("model_pi_zero") == ["pi-1", "pi-2"]
    assert inv.members("model_unknown") == ["sensor-3"]


def test_strict(moto, tmp_path, fleet):
    keyed = [{"key": "iot_attributes.host", "prefix": "address"}]  # sensor-3 has no host attribute
    inv = run(moto, tmp_path, config(keyed_groups=keyed))
    assert inv.members("address_10_0_0_1") == ["pi-1"]
    proc = run(moto, tmp_path, config(keyed_groups=keyed, strict=True), expect_ok=False)
    assert "sensor-3" in proc.stderr


# ---------------------------------------------------------------------------------------------
# filters


@pytest.mark.parametrize(
    "options, hosts",
    [
        (dict(thing_type="pi-zero"), ["pi-1", "pi-2"]),
        (dict(attributes={"room": "kitchen"}), ["pi-1", "sensor-3"]),
        # the first attribute goes to ListThings, the second is compared on the controller
        (dict(attributes={"room": "kitchen", "host": "10.0.0.1"}), ["pi-1"]),
        (dict(attributes={"port": 2201}), ["pi-1"]),  # a YAML integer is compared as AWS stores it
        (dict(thing_type="pi-zero", attributes={"room": "kitchen"}), ["pi-1"]),
        (dict(thing_groups=["kitchen-room"]), ["pi-1"]),
        (dict(thing_groups=["kitchen-room", "pis"]), ["pi-1", "pi-2"]),
        # accepted and passed to AWS; the stand-in lists direct members only (AWS adds child groups' things)
        (dict(thing_groups=["kitchen-room"], thing_groups_recursive=True), ["pi-1"]),
        (dict(thing_groups=["pis"], attributes={"room": "garage"}), ["pi-2"]),
        (dict(attributes={"room": "attic"}), []),
    ],
    ids=["type", "attribute", "two-attributes", "integer-value", "type-and-attribute", "group", "groups",
         "group-recursive", "group-and-attribute", "no-match"],
)
def test_filters(moto, tmp_path, fleet, options, hosts):
    inv = run(moto, tmp_path, config(**options))
    assert inv.hosts == hosts


def test_filter_on_missing_thing_group_warns(moto, tmp_path, fleet):
    inv = run(moto, tmp_path, config(thing_groups=["nowhere", "pis"]))
    assert inv.hosts == ["pi-1", "pi-2"]
    assert "Thing group 'nowhere' does not exist" in " ".join(inv.stderr.split())


def test_fleet_index_query(moto, tmp_path, fleet):
    # the stand-in (moto) answers SearchIndex without fleet indexing enabled, with a simple query language
    inv = run(moto, tmp_path, config(query="attributes.room:kitchen"))
    assert inv.hosts == ["pi-1", "sensor-3"]
    inv = run(moto, tmp_path, config(query="attributes.room:kitchen", thing_type="pi-zero"))
    assert inv.hosts == ["pi-1"]
    inv = run(moto, tmp_path, config(query="thingName:pi*", thing_groups=["pis"], attributes={"room": "garage"}))
    assert inv.hosts == ["pi-2"]


def test_fleet_index_not_enabled_names_the_fix():
    """AWS answers SearchIndex with IndexNotReadyException/ResourceNotFoundException without fleet indexing
    (the stand-in does not model that): the inventory says how to enable it."""
    error = botocore.exceptions.ClientError(
        {"Error": {"Code": "IndexNotReadyException", "Message": "index not ready"}}, "SearchIndex")

    class Client:
        def call(self, operation, **kwargs):
            raise IoTAWSError(message="Failed to search index", exception=error)

    with pytest.raises(iot_things.IoTInventoryError, match="thingIndexingMode=REGISTRY"):
        iot_things.Registry(Client()).search("attributes.room:kitchen", "AWS_Things")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(thing_type="pi zero"), "Invalid thing_type 'pi zero'"),
        (dict(attributes={"room": "has space"}), "Invalid value 'has space' for attribute 'room'"),
        (dict(attributes={"room": ""}), "Invalid value '' for attribute 'room'"),
        (dict(thing_groups=["bad/group"]), "Invalid thing group name 'bad/group'"),
        (dict(max_workers=0), "max_workers must be at least 1"),
    ],
    ids=["thing-type", "attribute-value", "empty-attribute-value", "thing-group", "max-workers"],
)
def test_invalid_options_fail_with_a_message(moto, tmp_path, options, message):
    proc = run(moto, tmp_path, config(**options), expect_ok=False)
    assert message in " ".join(proc.stderr.split())


def test_list_things_is_paginated(moto, tmp_path):
    # more than one ListThings page (250)
    for i in range(260):
        moto.iot.create_thing(thingName=f"pi-{i:03d}")
    inv = run(moto, tmp_path, config(include_certificates=False, include_thing_groups=False))
    assert inv.hosts == [f"pi-{i:03d}" for i in range(260)]


# ---------------------------------------------------------------------------------------------
# configuration file, connection options, cache


def test_file_name_must_end_with_iot_things_yml(moto, tmp_path, fleet):
    proc = run(moto, tmp_path, config(), name="lab.yml", expect_ok=False)
    assert "could not be verified by inventory plugin 'iotfleet.aws.iot_things'" in " ".join(proc.stderr.split())
    inv = run(moto, tmp_path, config(), name="iot_things.yaml")
    assert inv.hosts == ["pi-1", "pi-2", "sensor-3"]


def test_connection_options_in_the_file(moto, tmp_path, fleet):
    """region, endpoint_url and credentials as options, nothing AWS in the environment."""
    env = dict(AWS_ENDPOINT_URL=None, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_DEFAULT_REGION=None,
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    options = config(region="us-east-1", endpoint_url=moto.url, access_key="testing", secret_key="testing")
    assert run(moto, tmp_path, options, env=env).hosts == ["pi-1", "pi-2", "sensor-3"]
    # a template, as amazon.aws inventory plugins allow for the connection options
    options["endpoint_url"] = "{{ lookup('env', 'IOT_URL') }}"
    assert run(moto, tmp_path, options, env=dict(env, IOT_URL=moto.url)).hosts == ["pi-1", "pi-2", "sensor-3"]


def test_profile_from_aws_config_files(moto, tmp_path, fleet):
    """As the lab writes them (.lab/aws/config, credentials): endpoint and region in the profile."""
    (tmp_path / "aws-config").write_text(f"[profile fleet]\nregion = us-east-1\nendpoint_url = {moto.url}\n")
    (tmp_path / "aws-credentials").write_text("[fleet]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = dict(AWS_ENDPOINT_URL=None, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_DEFAULT_REGION=None,
               AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"))
    inv = run(moto, tmp_path, config(profile="fleet"), env=env)
    assert inv.hosts == ["pi-1", "pi-2", "sensor-3"]
    assert inv.hostvars["pi-1"]["iot_region"] == "us-east-1"


def test_no_region_fails_clearly(moto, tmp_path):
    env = dict(AWS_DEFAULT_REGION=None, AWS_CONFIG_FILE=str(tmp_path / "none"))
    proc = run(moto, tmp_path, config(), env=env, expect_ok=False)
    assert "requires a region" in proc.stderr


def test_cache(moto, tmp_path, fleet):
    options = config(cache=True, cache_plugin="ansible.builtin.jsonfile",
                     cache_connection=str(tmp_path / "cache"), cache_timeout=600)
    assert run(moto, tmp_path, options).hosts == ["pi-1", "pi-2", "sensor-3"]
    assert list((tmp_path / "cache").iterdir()), "nothing was cached"

    moto.iot.create_thing(thingName="pi-4")
    moto.iot.update_thing(thingName="pi-2", attributePayload={"attributes": {"room": "attic"}, "merge": True})
    cached = run(moto, tmp_path, options)
    assert cached.hosts == ["pi-1", "pi-2", "sensor-3"]  # from the cache: no AWS call
    assert cached.hostvars["pi-2"]["iot_attributes"]["room"] == "garage"
    assert cached.hostvars["pi-1"]["iot_certificates"][0]["status"] == "ACTIVE"
    assert cached.members("thing_group_pis") == ["pi-1", "pi-2"]

    fresh = run(moto, tmp_path, options, "--flush-cache")
    assert fresh.hosts == ["pi-1", "pi-2", "pi-4", "sensor-3"]
    assert fresh.hostvars["pi-2"]["iot_attributes"]["room"] == "attic"
    assert run(moto, tmp_path, options).hosts == fresh.hosts  # the refreshed cache


def test_without_cache_every_run_reads_the_registry(moto, tmp_path, fleet):
    assert run(moto, tmp_path, config()).hosts == ["pi-1", "pi-2", "sensor-3"]
    moto.iot.create_thing(thingName="pi-4")
    assert run(moto, tmp_path, config()).hosts == ["pi-1", "pi-2", "pi-4", "sensor-3"]


# ---------------------------------------------------------------------------------------------
# pure helpers


def test_assign_host_names():
    def record(name, **attributes):
        return dict(thing_name=name, attributes=attributes)

    records = [record("a", hostname="x"), record("b", hostname="x"), record("c", hostname="y"),
               record("d"), record("e", hostname="d"), record("f", hostname="")]
    names, warnings = iot_things.assign_host_names(records, "hostname")
    assert names == {"a": "a", "b": "b", "c": "y", "d": "d", "e": "e", "f": "f"}
    assert len(warnings) == 3
    assert iot_things.assign_host_names(records, None) == ({r["thing_name"]: r["thing_name"] for r in records}, [])


def test_order_certificates_puts_the_live_identity_first():
    certificates = [
        dict(certificate_id="1", status="INACTIVE", creation_date="2026-03-01T00:00:00"),
        dict(certificate_id="2", status="ACTIVE", creation_date="2026-01-01T00:00:00"),
        dict(certificate_id="3", status="ACTIVE", creation_date="2026-02-01T00:00:00"),
        dict(certificate_id="4", status="REVOKED", creation_date=None),
    ]
    assert [c["certificate_id"] for c in iot_things.order_certificates(certificates)] == ["3", "2", "1", "4"]


def test_certificate_id_of():
    assert iot_things.certificate_id_of("arn:aws:iot:us-east-1:123456789012:cert/" + "ab" * 32) == "ab" * 32
    assert iot_things.certificate_id_of("us-east-1:0000-cognito-identity") is None


def test_host_variables_without_details():
    record = dict(thing_name="t", thing_arn="arn", thing_type=None, attributes={"host": "h"},
                  thing_groups=None, certificates=None)
    assert iot_things.host_variables(record, "eu-west-1", "host") == dict(
        iot_thing_name="t", iot_thing_arn="arn", iot_thing_type=None, iot_region="eu-west-1",
        iot_attributes={"host": "h"}, iotfleet_thing_name="t", ansible_host="h")
